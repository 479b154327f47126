// The supervisor console: live queue figures and agent states, engagement watching, and the
// supervisor's acts (set an agent's status, end, finish wrap-up, transfer).
//
// Supervisor sockets are not resumable (events are numbered per socket): after a reconnect the server
// sends every agent's state and every queue's figures again, and the page watches again what it was
// watching (snapshot and transcript so far come back; fragments and messages are upserted by id).

import { Connection, api } from './protocol.js';
import {
  REASONS,
  clear,
  clock,
  connectionView,
  h,
  renderSignIn,
  showError,
  statusLabel,
  takeToken,
  timeOf,
  title,
  toast,
  tokenProblem,
} from './ui.js';

const TOKEN_KEY = 'switchboard.supervisor.token';
const $ = (id) => document.getElementById(id);

const app = {
  conn: null,
  token: null,
  queues: new Map(), // id -> queue info from GET /v1/queues
  queueRows: new Map(), // id -> {row, cells}
  agents: new Map(), // id -> last agent_state
  agentRows: new Map(), // id -> {row, cells}
  watches: new Map(), // engagement id -> Watch
  renderConnection: null,
};

// --- boot and sign-in -----------------------------------------------------------------------------

function boot() {
  const token = takeToken(TOKEN_KEY);
  if (!token) {
    showSignIn();
    return;
  }
  const problem = tokenProblem(token, 'supervisor');
  if (problem) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(problem);
    return;
  }
  start(token);
}

function showSignIn(message) {
  $('console').hidden = true;
  $('sign-out').hidden = true;
  $('conn-state').hidden = true;
  $('supervisor-name').textContent = '';
  renderSignIn($('signin'), {
    role: 'supervisor',
    message,
    onToken: (token) => {
      const problem = tokenProblem(token, 'supervisor');
      if (problem) {
        showSignIn(problem);
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, token);
      start(token);
    },
  });
}

function start(token) {
  app.token = token;
  $('signin').hidden = true;
  $('console').hidden = false;
  $('sign-out').hidden = false;
  $('conn-state').hidden = false;
  const conn = new Connection({
    path: '/v1/supervisor',
    token,
    resumable: false,
    onWelcome,
    onEvent,
    onState: () => app.renderConnection(),
    onFatal,
    onStrayError: (error) => showError(error),
  });
  app.conn = conn;
  app.renderConnection = connectionView(conn, $('conn-banner'), $('conn-state'));
  conn.start();
  app.renderConnection();
}

function teardown() {
  if (app.conn) app.conn.stop();
  app.conn = null;
  for (const watch of app.watches.values()) watch.node.remove();
  app.watches.clear();
  app.agents.clear();
  app.agentRows.clear();
  app.queueRows.clear();
  clear($('agent-rows'));
  clear($('queue-rows'));
}

function onFatal({ code, reason, message }) {
  teardown();
  if (code === 4401 || code === 4403) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(reason ? `${message} (${reason})` : message);
    return;
  }
  const banner = $('conn-banner');
  clear(banner, `Disconnected: ${message} `, h('button', { type: 'button', class: 'link', onclick: () => location.reload() }, 'Reload'));
  banner.hidden = false;
  banner.classList.add('fatal');
}

async function loadQueues() {
  try {
    const queues = await api('/v1/queues', { token: app.token });
    app.queues = new Map(queues.map((q) => [q.id, q]));
    for (const q of queues) {
      renderQueue(q.id, { queue: q.id, ...q.stats }, { fresh: false });
    }
    for (const watch of app.watches.values()) watch.renderTargets();
  } catch (error) {
    showError(error, 'Could not load the queues');
  }
}

// --- the socket -----------------------------------------------------------------------------------

function onWelcome(welcome) {
  if (!app.queues.size) loadQueues(); // reads need the token the server just accepted
  $('supervisor-name').textContent = welcome.name || welcome.agent;
  document.title = `Switchboard — Supervisor ${welcome.name || welcome.agent}`;
  for (const [id, watch] of app.watches) {
    app.conn.request({ type: 'watch', engagement: id }).catch((error) => {
      watch.setGone(error.message);
    });
  }
}

function onEvent(frame) {
  switch (frame.type) {
    case 'queue_stats':
      renderQueue(frame.queue, frame, { fresh: true });
      for (const [id, watch] of app.watches) {
        if (watch.eng && watch.eng.queue === frame.queue && ['queued', 'offered'].includes(watch.eng.state)) refreshWatch(id);
      }
      break;
    case 'agent_state': {
      const before = new Set(app.agents.get(frame.agent)?.engagements || []);
      for (const id of frame.engagements || []) before.delete(id);
      for (const id of before) if (app.watches.has(id)) refreshWatch(id); // left this agent: see where it went
      app.agents.set(frame.agent, frame);
      renderAgent(frame);
      for (const watch of app.watches.values()) watch.renderTargets();
      break;
    }
    case 'engagement':
      app.watches.get(frame.engagement.id)?.update(frame.engagement);
      break;
    case 'transcript':
      app.watches.get(frame.engagement)?.addFragments(frame.fragments);
      break;
    case 'message':
      app.watches.get(frame.engagement)?.addMessage(frame);
      break;
    case 'closing':
      toast('The server is restarting; reconnecting shortly.');
      break;
    default:
      break;
  }
}

// --- queues ---------------------------------------------------------------------------------------

function renderQueue(id, stats, { fresh }) {
  let entry = app.queueRows.get(id);
  const created = !entry;
  if (!entry) {
    const cells = {
      name: h('th', { scope: 'row' }),
      channel: h('td', {}),
      waiting: h('td', { class: 'num', testid: 'waiting' }),
      longest: h('td', { class: 'num', testid: 'longest-wait' }),
      ready: h('td', { class: 'num', testid: 'ready' }),
      notReady: h('td', { class: 'num', testid: 'not-ready' }),
      offline: h('td', { class: 'num', testid: 'offline' }),
      available: h('td', { class: 'num', testid: 'available' }),
    };
    const row = h('tr', { testid: 'queue-row', dataset: { queue: id } }, Object.values(cells));
    entry = { row, cells };
    app.queueRows.set(id, entry);
  }
  if (created || !fresh) {
    // in the configuration's order, once the listing (which may come after the first live figures) says it
    const order = [...app.queues.keys()];
    const rows = [...app.queueRows.entries()].sort(([a], [b]) => rank(order, a) - rank(order, b)).map(([, e]) => e.row);
    clear($('queue-rows'), rows);
  }
  const q = app.queues.get(id);
  const { cells, row } = entry;
  cells.name.textContent = q ? q.name : id;
  cells.channel.textContent = q ? title(q.channel) : '';
  if (!fresh && entry.live) return; // a socket figure is newer than the HTTP listing
  if (fresh) entry.live = true;
  const before = row.dataset.figures;
  cells.waiting.textContent = String(stats.waiting);
  cells.longest.textContent = stats.waiting ? clock(stats.longest_wait_s) : '—';
  cells.ready.textContent = String(stats.agents?.ready ?? 0);
  cells.notReady.textContent = String(stats.agents?.not_ready ?? 0);
  cells.offline.textContent = String(stats.agents?.offline ?? 0);
  cells.available.textContent = String(stats.available ?? 0);
  row.dataset.figures = [stats.waiting, stats.agents?.ready, stats.agents?.not_ready, stats.agents?.offline, stats.available].join('/');
  if (before && before !== row.dataset.figures) flash(row);
}

function rank(order, id) {
  const i = order.indexOf(id);
  return i < 0 ? order.length : i;
}

function flash(row) {
  row.classList.remove('changed');
  void row.offsetWidth;
  row.classList.add('changed');
}

// --- agents ---------------------------------------------------------------------------------------

function renderAgent(state) {
  let entry = app.agentRows.get(state.agent);
  if (!entry) {
    const select = h('select', { id: `set-${state.agent}`, testid: 'set-status-select', onchange: () => { select.dataset.chosen = '1'; } },
      h('option', { value: 'ready' }, 'Ready'),
      h('option', { value: 'not_ready:' }, 'Not ready'),
      REASONS.map(([code, label]) => h('option', { value: `not_ready:${code}` }, `Not ready — ${label}`)));
    const button = h('button', {
      type: 'button', testid: 'set-status',
      onclick: () => {
        delete select.dataset.chosen;
        setAgentStatus(state.agent, select);
      },
    }, 'Set');
    const cells = {
      name: h('th', { scope: 'row' }),
      status: h('td', { class: 'status-cell', testid: 'agent-status' }),
      activity: h('td', { testid: 'agent-activity' }),
      engagements: h('td', { testid: 'agent-engagements' }),
      set: h('td', {}, h('div', { class: 'set-status' },
        h('label', { for: `set-${state.agent}`, class: 'visually-hidden' }, `Status for ${state.name || state.agent}`), select, button)),
    };
    const row = h('tr', { testid: 'agent-row', dataset: { agent: state.agent } }, Object.values(cells));
    entry = { row, cells, select, button };
    app.agentRows.set(state.agent, entry);
    $('agent-rows').append(row);
  }
  const { cells, row, select } = entry;
  if (!select.dataset.chosen && document.activeElement !== select) {
    const current = state.status === 'ready' ? 'ready' : `not_ready:${state.reason || ''}`;
    if ([...select.options].some((o) => o.value === current)) select.value = current;
    else if (state.status !== 'ready') select.value = 'not_ready:';
  }
  const offline = state.status === 'offline';
  select.disabled = offline; // the server would mark an agent who is not signed in as ready
  entry.button.disabled = offline;
  entry.button.title = offline ? 'Not signed in' : '';
  cells.name.textContent = state.name || state.agent;
  cells.status.textContent = statusLabel(state.status, state.reason);
  cells.status.dataset.status = state.status;
  cells.activity.textContent = { idle: 'Idle', ringing: 'Ringing', busy: 'Busy', wrap_up: 'Wrap-up' }[state.activity] || title(state.activity);
  const engagements = state.engagements || [];
  clear(cells.engagements, engagements.length
    ? h('div', { class: 'eng-links' }, engagements.map((id) => h('button', {
      type: 'button', testid: 'watch-engagement', dataset: { engagement: id }, title: `Watch ${id}`,
      'aria-pressed': app.watches.has(id) ? 'true' : 'false', onclick: () => watch(id),
    }, `Watch ${shortId(id)}`)))
    : h('span', { class: 'muted' }, '—'));
  const signature = `${state.status}/${state.reason}/${state.activity}/${engagements.join(',')}`;
  if (row.dataset.signature && row.dataset.signature !== signature) flash(row);
  row.dataset.signature = signature;
}

function shortId(id) {
  return id.length > 10 ? `…${id.slice(-6)}` : id;
}

async function setAgentStatus(agent, select) {
  const [status, reason] = select.value.split(':');
  const frame = { type: 'set_agent_status', agent, status };
  if (status === 'not_ready' && reason) frame.reason = reason;
  const name = app.agents.get(agent)?.name || agent;
  try {
    const ok = await app.conn.request(frame);
    const label = statusLabel(status, reason || null);
    toast(ok.deferred ? `${name} will be “${label}” once their current work is done.` : `${name} is now “${label}”.`);
  } catch (error) {
    showError(error, `Could not set ${name}’s status`);
  }
}

// --- watching -------------------------------------------------------------------------------------

/**
 * Read a watched engagement over HTTP. The server sends watchers no `engagement` event when an
 * engagement is queued, offered, transferred, released or abandoned, so the page looks again when the
 * agent who held it or its queue's figures change (and after its own transfers).
 */
async function refreshWatch(id) {
  try {
    const eng = await api(`/v1/engagements/${encodeURIComponent(id)}`, { token: app.token });
    const watch = app.watches.get(id);
    if (watch && (!watch.eng || (eng.history?.length || 0) >= (watch.eng.history?.length || 0))) watch.update(eng);
  } catch {
    /* the next event or figure tells again */
  }
}

async function watch(id) {
  id = id.trim();
  if (!id) return;
  const existing = app.watches.get(id);
  if (existing) {
    existing.heading.focus();
    return;
  }
  const view = new Watch(id);
  app.watches.set(id, view);
  $('watches').prepend(view.node);
  refreshWatchButtons();
  try {
    await app.conn.request({ type: 'watch', engagement: id });
    view.heading.focus();
  } catch (error) {
    view.destroy();
    showError(error, `Cannot watch ${id}`);
  }
}

async function unwatch(id) {
  const view = app.watches.get(id);
  if (!view) return;
  view.destroy();
  if (app.conn && app.conn.state === 'connected') {
    await app.conn.request({ type: 'unwatch', engagement: id }).catch((error) => showError(error, 'Unwatch failed'));
  }
}

function refreshWatchButtons() {
  for (const button of document.querySelectorAll('[data-testid="watch-engagement"]')) {
    button.setAttribute('aria-pressed', app.watches.has(button.dataset.engagement) ? 'true' : 'false');
  }
}

let watchCount = 0;

class Watch {
  constructor(id) {
    this.id = id;
    this.key = `w${++watchCount}`;
    this.eng = null;
    this.fragments = new Map();
    this.messages = new Set();
    this.heading = h('h3', { id: `${this.key}-title`, tabindex: '-1' }, id);
    this.meta = h('p', { class: 'muted small', testid: 'watch-meta' });
    this.stateNode = h('span', { class: 'state-pill', testid: 'watch-state' }, '…');
    this.target = h('select', { id: `${this.key}-target`, testid: 'force-transfer-target' });
    this.endButton = h('button', { type: 'button', class: 'danger', testid: 'force-end', onclick: () => this.act({ type: 'force_end' }, 'Could not end') }, 'End');
    this.wrapButton = h('button', { type: 'button', testid: 'force-wrap-up-done', onclick: () => this.act({ type: 'force_wrap_up_done' }, 'Could not finish wrap-up') }, 'Finish wrap-up');
    this.transferButton = h('button', { type: 'button', testid: 'force-transfer', onclick: () => this.transfer() }, 'Transfer');
    this.transcript = h('ol', { class: 'transcript', testid: 'watch-transcript', 'aria-label': 'Transcript', tabindex: '0' });
    this.thread = h('ol', { class: 'thread', testid: 'watch-thread', 'aria-label': 'Thread', hidden: true });
    this.node = h('article', { class: 'card watch', testid: 'watch', dataset: { engagement: id }, 'aria-labelledby': `${this.key}-title` },
      h('div', { class: 'row' }, this.heading, this.stateNode, h('span', { class: 'spacer' }),
        h('button', { type: 'button', class: 'quiet', testid: 'unwatch', onclick: () => unwatch(id) }, 'Stop watching')),
      this.meta,
      h('div', { class: 'row' }, this.endButton, this.wrapButton,
        h('label', { for: `${this.key}-target`, class: 'visually-hidden' }, 'Transfer to'), this.target, this.transferButton),
      this.transcript,
      this.thread);
    this.renderTargets();
  }

  update(eng) {
    this.eng = eng;
    const who = eng.profile?.name || eng.consumer?.name || eng.consumer?.phone || eng.consumer?.email || 'Unknown consumer';
    this.heading.textContent = `${who} · ${title(eng.channel)}`;
    this.stateNode.textContent = title(eng.state);
    this.stateNode.className = `state-pill state-${eng.state}`;
    this.stateNode.dataset.state = eng.state;
    const agent = eng.agent ? app.agents.get(eng.agent)?.name || eng.agent : 'no agent';
    const parts = [eng.queue_name || eng.queue, agent, eng.id];
    if (eng.state === 'wrap_up' && eng.wrap_up_until) parts.push(`wrap-up until ${timeOf(eng.wrap_up_until)}`);
    if (eng.dispositions?.length) parts.push(`disposition: ${eng.dispositions.join(', ')}`);
    this.meta.textContent = parts.join(' · ');
    const over = ['closed', 'resolved', 'abandoned'].includes(eng.state);
    this.endButton.disabled = over;
    this.wrapButton.hidden = eng.state !== 'wrap_up';
    this.transferButton.disabled = over || eng.state === 'wrap_up' || eng.state === 'offered';
    this.target.disabled = this.transferButton.disabled;
    this.thread.hidden = !(eng.channel === 'chat' || eng.channel === 'email');
    for (const message of eng.messages || []) this.addMessage(message);
    this.renderTargets();
  }

  renderTargets() {
    const channel = this.eng?.channel;
    const value = this.target.value;
    const queues = [...app.queues.values()].filter((q) => !channel || q.channel === channel);
    const agents = [...app.agents.values()].filter((a) => a.agent !== this.eng?.agent);
    const signature = [channel, ...queues.map((q) => q.id), ...agents.map((a) => `${a.agent}:${a.status}`)].join('|');
    if (this.target.dataset.signature === signature) return;
    this.target.dataset.signature = signature;
    clear(this.target,
      h('optgroup', { label: 'Queues' }, queues.map((q) => h('option', { value: `queue:${q.id}` }, q.name))),
      h('optgroup', { label: 'Agents' }, agents.map((a) => h('option', { value: `agent:${a.agent}` }, `${a.name} (${statusLabel(a.status, a.reason).toLowerCase()})`))));
    if (value && [...this.target.options].some((o) => o.value === value)) this.target.value = value;
  }

  addFragments(fragments) {
    const stick = this.transcript.scrollTop + this.transcript.clientHeight >= this.transcript.scrollHeight - 24;
    for (const fragment of fragments) {
      let li = this.fragments.get(fragment.id);
      if (!li) {
        li = h('li', { class: 'fragment', testid: 'watch-fragment', dataset: { fragmentId: fragment.id } });
        this.fragments.set(fragment.id, li);
        this.transcript.append(li);
      }
      li.classList.toggle('partial', !fragment.final);
      li.dataset.final = fragment.final ? 'true' : 'false';
      clear(li, h('span', { class: `speaker speaker-${fragment.speaker}` }, title(fragment.speaker)),
        h('span', { class: 'text' }, fragment.text), h('time', { class: 'muted small' }, timeOf(fragment.ts)));
    }
    if (stick) this.transcript.scrollTop = this.transcript.scrollHeight;
  }

  addMessage(message) {
    if (this.messages.has(message.id)) return;
    this.messages.add(message.id);
    this.thread.hidden = false;
    this.thread.append(h('li', { class: `message dir-${message.direction}`, testid: 'watch-message' },
      h('p', { class: 'message-head muted small' }, h('strong', {}, message.sender), ' · ', timeOf(message.ts)),
      message.subject ? h('p', { class: 'message-subject' }, message.subject) : null,
      h('p', { class: 'message-text' }, message.text)));
    this.thread.scrollTop = this.thread.scrollHeight;
  }

  async act(frame, what) {
    try {
      await app.conn.request({ ...frame, engagement: this.id });
    } catch (error) {
      showError(error, what);
    }
  }

  async transfer() {
    const [kind, target] = this.target.value.split(':');
    if (!target) return;
    try {
      await app.conn.request({ type: 'force_transfer', engagement: this.id, [kind]: target });
      toast(`Transferred to ${this.target.selectedOptions[0]?.textContent || target}.`);
      refreshWatch(this.id);
    } catch (error) {
      showError(error, 'Not transferred');
    }
  }

  setGone(message) {
    this.stateNode.textContent = 'Unavailable';
    this.meta.textContent = message;
  }

  destroy() {
    this.node.remove();
    app.watches.delete(this.id);
    refreshWatchButtons();
  }
}

// --- wiring ---------------------------------------------------------------------------------------

function wire() {
  $('watch-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('watch-input');
    watch(input.value);
    input.value = '';
  });
  $('sign-out').addEventListener('click', () => {
    teardown();
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn('You are signed out.');
  });
}

wire();
boot();
