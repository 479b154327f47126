// The agent desktop: sign-in, status, rings, and the engagements the agent holds (calls, chats, emails).
//
// State comes from the server only: the `welcome` snapshot (engagements, offers, status) and the events
// after it. Rings are kept by offer id, engagements by id, transcript fragments and thread messages by
// id, so nothing shows twice whatever the server resends. The connection (protocol.js) resumes by itself
// after a drop; a non-resumed welcome rebuilds the whole view from its snapshot.

import { Connection, api } from './protocol.js';
import {
  Beeper,
  REASONS,
  clear,
  clock,
  connectionView,
  h,
  highlighted,
  reasonLabel,
  renderSignIn,
  showError,
  statusLabel,
  takeToken,
  timeOf,
  title,
  toast,
  tokenProblem,
} from './ui.js';

const TOKEN_KEY = 'switchboard.agent.token';
const HELD = new Set(['active', 'wrap_up', 'assigned', 'open']);
const NOTE_DEBOUNCE_MS = 700;
const $ = (id) => document.getElementById(id);

const app = {
  conn: null,
  token: null,
  me: null, // {id, name}
  status: { status: 'offline', reason: null, next_status: null, next_reason: null },
  statusEvents: 0,
  rings: new Map(), // offer id -> {ring, node}
  views: new Map(), // engagement id -> EngagementView
  orphanFragments: new Map(), // engagement id -> fragments that came before its snapshot
  selected: null,
  queues: new Map(),
  seen: {}, // engagement id -> inbound messages seen
  beeper: new Beeper(),
  renderConnection: null,
  ticker: null,
  lastBeep: 0,
  agentNames: new Map(), // agent id -> name, for transfer messages
};

// --- boot and sign-in -----------------------------------------------------------------------------

function boot() {
  const token = takeToken(TOKEN_KEY);
  if (!token) {
    showSignIn();
    return;
  }
  const problem = tokenProblem(token, 'agent');
  if (problem) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(problem);
    return;
  }
  startDesk(token);
}

function showSignIn(message) {
  $('desk').hidden = true;
  $('status-area').hidden = true;
  $('sign-out').hidden = true;
  $('conn-state').hidden = true;
  $('sound-toggle').hidden = true;
  $('agent-name').textContent = '';
  document.title = 'Switchboard — Sign in';
  renderSignIn($('signin'), {
    role: 'agent',
    message,
    onToken: (token) => {
      const problem = tokenProblem(token, 'agent');
      if (problem) {
        showSignIn(problem);
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, token);
      startDesk(token);
    },
  });
}

function startDesk(token) {
  app.token = token;
  $('signin').hidden = true;
  $('desk').hidden = false;
  $('sign-out').hidden = false;
  $('conn-state').hidden = false;
  $('sound-toggle').hidden = false;
  const conn = new Connection({
    path: '/v1/agent',
    token,
    resumable: true,
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
  clearInterval(app.ticker);
  app.ticker = setInterval(tick, 250);
}

function teardown() {
  if (app.conn) app.conn.stop();
  app.conn = null;
  clearInterval(app.ticker);
  for (const view of app.views.values()) view.destroy();
  app.views.clear();
  app.orphanFragments.clear();
  for (const offer of [...app.rings.keys()]) removeRing(offer);
  app.selected = null;
  app.me = null;
  renderLists();
  showWorkspace();
}

function onFatal({ code, reason, message }) {
  teardown();
  if (code === 4401 || code === 4403) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(reason ? `${message} (${reason})` : message);
    return;
  }
  const banner = $('conn-banner');
  clear(banner, `Disconnected: ${message}${reason ? ` (${reason})` : ''} `,
    h('button', { type: 'button', class: 'link', onclick: () => location.reload() }, 'Reload'));
  banner.hidden = false;
  banner.classList.add('fatal');
}

async function signOut() {
  const conn = app.conn;
  if (conn && conn.state === 'connected' && app.status.status === 'ready' && activity() === 'idle') {
    await conn.request({ type: 'set_status', status: 'not_ready', reason: 'signed_out' }).catch(() => {});
  }
  await Promise.all([...app.views.values()].map((view) => view.flushNotes()));
  teardown();
  sessionStorage.removeItem(TOKEN_KEY);
  showSignIn('You are signed out.');
}

async function loadQueues() {
  try {
    const [queues, agents] = await Promise.all([
      api('/v1/queues', { token: app.token }),
      api('/v1/agents', { token: app.token }),
    ]);
    app.queues = new Map(queues.map((q) => [q.id, q]));
    app.agentNames = new Map(agents.map((a) => [a.id, a.name]));
    for (const view of app.views.values()) view.render();
  } catch (error) {
    showError(error, 'Could not load the queues');
  }
}

// --- the socket -----------------------------------------------------------------------------------

function onWelcome(welcome, { first }) {
  app.me = { id: welcome.agent, name: welcome.name || welcome.agent };
  document.body.dataset.resumed = welcome.resumed ? 'true' : 'false';
  $('agent-name').textContent = app.me.name;
  $('status-area').hidden = false;
  loadSeen();
  if (first) loadQueues(); // reads need the token the server just accepted
  if (!welcome.resumed) rebuild(welcome, { first });
  refreshNextStatus();
  for (const view of app.views.values()) view.resaveNotes();
  renderStatus();
  renderTitle();
}

/** A fresh snapshot: what the server says now replaces everything (local drafts survive). */
function rebuild(welcome, { first }) {
  if (!first) toast('The server could not resume your session: your desk was reloaded from what it holds now.');
  app.status = { status: welcome.status, reason: welcome.reason, next_status: null, next_reason: null };
  const offers = new Set((welcome.offers || []).map((r) => r.offer));
  for (const offer of [...app.rings.keys()]) if (!offers.has(offer)) removeRing(offer);
  for (const ring of welcome.offers || []) addRing(ring);
  const held = new Map((welcome.engagements || []).filter(isMine).map((e) => [e.id, e]));
  for (const [id, view] of [...app.views]) {
    if (!held.has(id)) dropView(id, null);
    else view.update(held.get(id));
  }
  for (const [id, eng] of held) if (!app.views.has(id)) addView(eng);
  for (const id of Object.keys(app.seen)) if (!held.has(id)) delete app.seen[id];
  for (const id of [...app.orphanFragments.keys()]) if (!held.has(id)) app.orphanFragments.delete(id);
  saveSeen();
  if (!app.selected || !app.views.has(app.selected)) select(firstLive(), { focus: false });
  renderLists();
}

/** The pending next status, which `welcome` does not carry, from GET /v1/agents/{id}. */
async function refreshNextStatus() {
  const conn = app.conn;
  const before = app.statusEvents;
  try {
    const info = await api(`/v1/agents/${encodeURIComponent(app.me.id)}`, { token: app.token });
    if (conn !== app.conn || app.statusEvents !== before) return; // a status event since is newer
    app.status = { ...app.status, next_status: info.next_status, next_reason: info.next_reason };
    renderStatus();
  } catch {
    /* shown with the next status event */
  }
}

function onEvent(frame) {
  switch (frame.type) {
    case 'ring':
      addRing(frame);
      break;
    case 'ring_cancelled':
      ringCancelled(frame);
      break;
    case 'engagement':
      applyEngagement(frame.engagement);
      break;
    case 'status':
      app.statusEvents += 1;
      app.status = {
        status: frame.status,
        reason: frame.reason,
        next_status: frame.next_status,
        next_reason: frame.next_reason,
      };
      renderStatus();
      break;
    case 'transcript': {
      const view = app.views.get(frame.engagement);
      if (view) view.addFragments(frame.fragments);
      else app.orphanFragments.set(frame.engagement, [...(app.orphanFragments.get(frame.engagement) || []), ...frame.fragments]);
      break;
    }
    case 'message': {
      const view = app.views.get(frame.engagement);
      if (view) {
        view.addMessage(frame);
        if (frame.direction === 'in' && app.selected !== frame.engagement) {
          toast(`New message from ${frame.sender}`);
        }
      }
      break;
    }
    case 'closing':
      toast('The server is restarting; reconnecting shortly.');
      break;
    default:
      break; // unknown event types are ignored (protocol v1 may add some)
  }
}

function isMine(eng) {
  return app.me && eng.agent === app.me.id && HELD.has(eng.state);
}

function applyEngagement(eng) {
  for (const [offer, entry] of [...app.rings]) {
    if (entry.ring.engagement.id === eng.id && eng.state !== 'offered') removeRing(offer);
  }
  const view = app.views.get(eng.id);
  if (!isMine(eng)) {
    if (view) dropView(eng.id, view.leaving ? `${displayName(eng)}: ${view.leaving}.` : endedText(eng));
    return;
  }
  if (view) {
    view.update(eng);
  } else {
    addView(eng);
    const current = app.views.get(app.selected);
    if (eng.channel !== 'email' && (!current || current.eng.channel === 'email')) select(eng.id, { focus: false });
  }
  renderLists();
}

/** Why an engagement left this desk, in words (from its state and the last move in its history). */
function endedText(eng) {
  const who = displayName(eng);
  const move = [...(eng.history || [])].reverse().find((e) => ['transferred', 'released'].includes(e.event));
  if (move && !['closed', 'resolved', 'abandoned'].includes(eng.state)) {
    const by = move.actor?.startsWith('supervisor:') ? ' by a supervisor' : '';
    if (move.event === 'released') return `${who}: released back to the queue${by}.`;
    const to = move.agent ? app.agentNames.get(move.agent) || move.agent : app.queues.get(move.queue)?.name || move.queue;
    return `${who}: transferred to ${to}${by}.`;
  }
  if (eng.state === 'closed') return `${who}: closed.`;
  if (eng.state === 'resolved') return `${who}: resolved.`;
  if (eng.state === 'abandoned') return `${who} left.`;
  return `${who} is no longer yours.`;
}

function addView(eng) {
  const view = new EngagementView(eng);
  app.views.set(eng.id, view);
  const early = app.orphanFragments.get(eng.id);
  if (early) {
    app.orphanFragments.delete(eng.id);
    view.addFragments(early);
  }
  return view;
}

function dropView(id, message) {
  const view = app.views.get(id);
  if (!view) return;
  view.destroy();
  app.views.delete(id);
  app.orphanFragments.delete(id);
  delete app.seen[id];
  saveSeen();
  if (message) toast(message);
  if (app.selected === id) select(firstLive(), { focus: false });
  renderLists();
}

function firstLive() {
  return [...app.views.values()].find((v) => v.eng.channel !== 'email')?.id || null;
}

// --- status ---------------------------------------------------------------------------------------

function statusValue(status, reason) {
  return status === 'ready' ? 'ready' : `not_ready:${reason || ''}`;
}

function renderStatus() {
  const { status, reason, next_status: next, next_reason: nextReason } = app.status;
  const badge = $('status-badge');
  badge.textContent = statusLabel(status, reason);
  badge.dataset.status = status;
  const select = $('status-select');
  const options = [['ready', 'Ready'], ['not_ready:', 'Not ready'], ...REASONS.map(([code, label]) => [`not_ready:${code}`, `Not ready — ${label}`])];
  const wanted = next ? statusValue(next, nextReason) : statusValue(status, reason);
  if (!options.some(([value]) => value === wanted) && wanted.startsWith('not_ready:')) {
    options.push([wanted, `Not ready — ${reasonLabel(wanted.slice(10))}`]);
  }
  const signature = options.map(([v]) => v).join('|');
  if (select.dataset.signature !== signature) {
    clear(select, options.map(([value, label]) => h('option', { value }, label)));
    select.dataset.signature = signature;
  }
  select.value = wanted;
  const nextBadge = $('next-status');
  nextBadge.hidden = !next;
  nextBadge.textContent = next ? `Next: ${statusLabel(next, nextReason)}` : '';
  renderActivity();
}

/** What the agent is doing, derived from what the page holds (as the server derives it). */
function activity() {
  const live = [...app.views.values()].filter((v) => v.eng.channel !== 'email');
  if (live.some((v) => v.eng.state === 'wrap_up')) return 'wrap_up';
  if (app.views.size) return 'busy';
  if (app.rings.size) return 'ringing';
  return 'idle';
}

function renderActivity() {
  const node = $('activity');
  const value = activity();
  node.dataset.activity = value;
  node.textContent = { idle: 'Idle', ringing: 'Ringing', busy: 'Busy', wrap_up: 'Wrap-up' }[value];
}

async function changeStatus() {
  const [status, reason] = $('status-select').value.split(':');
  const frame = { type: 'set_status', status };
  if (status === 'not_ready' && reason) frame.reason = reason;
  try {
    const ok = await app.conn.request(frame);
    if (ok.deferred) {
      const label = statusLabel(status, reason || null);
      app.status = { ...app.status, next_status: status, next_reason: reason || null };
      toast(`You will be “${label}” once your current work is done.`);
    }
  } catch (error) {
    showError(error, 'Status not changed');
  }
  renderStatus();
}

// --- rings ----------------------------------------------------------------------------------------

function addRing(ring) {
  const existing = app.rings.get(ring.offer);
  if (existing) {
    existing.ring = ring;
    return;
  }
  const node = renderRing(ring);
  app.rings.set(ring.offer, { ring, node });
  $('rings').append(node);
  markFirstRing();
  app.lastBeep = 0;
  tick();
  renderActivity();
  const eng = ring.engagement;
  announce(`Incoming ${eng.channel} from ${displayName(eng)}, ${eng.queue_name || eng.queue}. Press A to accept, D to decline.`);
  const active = document.activeElement;
  const typing = active && (active.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(active.tagName));
  if (!typing && !$('transfer-dialog').open) node.querySelector('[data-testid="ring-accept"]').focus();
}

function announce(text) {
  const region = $('announce');
  region.textContent = '';
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

function removeRing(offer) {
  const entry = app.rings.get(offer);
  if (!entry) return;
  entry.node.remove();
  app.rings.delete(offer);
  markFirstRing();
  renderActivity();
  renderTitle();
}

function markFirstRing() {
  let first = true;
  for (const { node } of app.rings.values()) {
    node.classList.toggle('first', first);
    for (const kbd of node.querySelectorAll('kbd')) kbd.hidden = !first;
    first = false;
  }
}

function ringCancelled(frame) {
  const entry = app.rings.get(frame.offer);
  if (!entry) return;
  removeRing(frame.offer);
  const who = displayName(entry.ring.engagement);
  const why = { timeout: 'Missed', abandoned: 'Hung up before you answered', taken: 'Taken by a colleague' }[frame.reason];
  if (why) toast(`${why}: ${who}.`);
}

function displayName(eng) {
  return eng.profile?.name || eng.consumer?.name || eng.consumer?.phone || eng.consumer?.email || eng.profile?.phone || eng.profile?.email || 'Unknown caller';
}

function fieldList(entries, testid) {
  const items = Object.entries(entries || {});
  if (!items.length) return null;
  return h('dl', { class: 'fields', testid }, items.map(([k, v]) => [h('dt', {}, title(k)), h('dd', {}, v === null ? '—' : String(v))]));
}

function transferNote(eng) {
  const offered = [...(eng.history || [])].reverse().find((e) => e.event === 'offered');
  return offered?.reason?.startsWith('transfer') ? `Transferred to you (${offered.reason.replace('transfer by ', 'by ')})` : null;
}

function renderRing(ring) {
  const eng = ring.engagement;
  const profile = eng.profile || {};
  const contact = [profile.phone || eng.consumer?.phone, profile.email || eng.consumer?.email].filter(Boolean).join(' · ');
  const headingId = `ring-title-${ring.offer}`;
  const accept = h('button', { type: 'button', class: 'accept', testid: 'ring-accept', 'aria-keyshortcuts': 'A', onclick: () => acceptRing(ring.offer) },
    'Accept ', h('kbd', {}, 'A'));
  const decline = h('button', { type: 'button', class: 'decline', testid: 'ring-decline', 'aria-keyshortcuts': 'D', onclick: () => declineRing(ring.offer) },
    'Decline ', h('kbd', {}, 'D'));
  const note = transferNote(eng);
  return h('article', { class: `ring channel-${eng.channel}`, testid: 'ring', dataset: { offer: ring.offer, engagement: eng.id }, 'aria-labelledby': headingId },
    h('p', { class: 'ring-kind' }, h('span', { class: 'channel-icon', 'aria-hidden': 'true' }, channelIcon(eng.channel)),
      ` Incoming ${eng.channel} · `, h('span', { testid: 'ring-queue' }, eng.queue_name || eng.queue)),
    h('h2', { id: headingId, testid: 'ring-consumer' }, displayName(eng)),
    contact ? h('p', { class: 'contact' }, contact) : null,
    note ? h('p', { class: 'transfer-note' }, note) : null,
    eng.summary ? h('p', { class: 'summary', testid: 'ring-summary' }, h('strong', {}, 'Summary: '), eng.summary) : null,
    eng.subject ? h('p', { class: 'summary' }, h('strong', {}, 'Subject: '), eng.subject) : null,
    Object.keys(eng.variables || {}).length ? h('section', { class: 'ring-vars' }, h('h3', {}, 'From the flow'), fieldList(eng.variables, 'ring-variables')) : null,
    Object.keys(profile.fields || {}).length ? h('details', { class: 'ring-profile' }, h('summary', {}, 'Profile'), fieldList(profile.fields, 'ring-profile')) : null,
    h('div', { class: 'countdown' },
      h('progress', { max: String(ring.timeout_s || 20), value: String(ring.timeout_s || 20), 'aria-hidden': 'true' }),
      h('span', { testid: 'ring-countdown', 'aria-live': 'off' }, '')),
    h('div', { class: 'ring-buttons' }, accept, decline));
}

function channelIcon(channel) {
  return { voice: '☎', video: '▶', chat: '✎', email: '✉' }[channel] || '•';
}

async function acceptRing(offer) {
  const entry = app.rings.get(offer);
  if (!entry) return;
  for (const button of entry.node.querySelectorAll('button')) button.disabled = true;
  try {
    const ok = await app.conn.request({ type: 'accept', offer });
    removeRing(offer);
    if (app.views.has(ok.engagement)) select(ok.engagement);
  } catch (error) {
    showError(error, 'Could not accept');
    if (error.code === 'not_found' || error.code === 'not_yours') removeRing(offer);
    else for (const button of entry.node.querySelectorAll('button')) button.disabled = false;
  }
}

async function declineRing(offer) {
  const entry = app.rings.get(offer);
  if (!entry) return;
  for (const button of entry.node.querySelectorAll('button')) button.disabled = true;
  try {
    await app.conn.request({ type: 'decline', offer });
    removeRing(offer);
  } catch (error) {
    showError(error, 'Could not decline');
    if (error.code === 'not_found' || error.code === 'not_yours') removeRing(offer);
    else for (const button of entry.node.querySelectorAll('button')) button.disabled = false;
  }
}

function onKey(event) {
  if (!app.rings.size || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  const target = event.target;
  if (target && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName))) return;
  if ($('transfer-dialog').open) return;
  const first = app.rings.keys().next().value;
  const key = event.key.toLowerCase();
  if (key === 'a') {
    event.preventDefault();
    acceptRing(first);
  } else if (key === 'd') {
    event.preventDefault();
    declineRing(first);
  }
}

/** Countdowns (rings, wrap-up), the title flash and the ring beep. */
function tick() {
  const conn = app.conn;
  if (!conn) return;
  const now = conn.serverNow();
  for (const [offer, { ring, node }] of app.rings) {
    const left = ring.expires_at - now;
    const label = node.querySelector('[data-testid="ring-countdown"]');
    label.textContent = left > 0 ? `${Math.ceil(left)} s left` : 'Expired';
    node.querySelector('progress').value = Math.max(0, left);
    node.classList.toggle('expired', left <= 0);
    if (left < -5 && conn.state === 'connected') removeRing(offer); // the server's cancel got lost
  }
  for (const view of app.views.values()) view.tick(now);
  if (app.rings.size && Date.now() - app.lastBeep > 2500) {
    app.lastBeep = Date.now();
    app.beeper.beep();
  }
  renderTitle();
}

function renderTitle() {
  const name = app.me ? app.me.name : 'Agent desktop';
  const unread = [...app.views.values()].filter((v) => v.unread()).length;
  let text = `${unread ? `(${unread}) ` : ''}Switchboard — ${name}`;
  if (app.rings.size && Math.floor(Date.now() / 1000) % 2 === 0) {
    const ring = app.rings.values().next().value.ring;
    text = `🔔 Incoming ${ring.engagement.channel} — ${displayName(ring.engagement)}`;
  }
  if (document.title !== text) document.title = text;
}

// --- lists and selection --------------------------------------------------------------------------

function renderLists() {
  const views = [...app.views.values()];
  const live = views.filter((v) => v.eng.channel !== 'email');
  const mail = views.filter((v) => v.eng.channel === 'email');
  const focused = document.activeElement?.closest?.('.eng-list') ? document.activeElement.dataset.engagement : null;
  clear($('live-list'), live.map(listItem));
  clear($('inbox-list'), mail.map(listItem));
  if (focused) document.querySelector(`.eng-item[data-engagement="${CSS.escape(focused)}"]`)?.focus(); // keep the keyboard's place
  $('live-empty').hidden = live.length > 0;
  $('inbox-empty').hidden = mail.length > 0;
  const unread = mail.filter((v) => v.unread()).length;
  $('inbox-unread').hidden = !unread;
  $('inbox-unread').textContent = unread ? `${unread} unread` : '';
  renderActivity();
  renderTitle();
}

function listItem(view) {
  const eng = view.eng;
  const unread = view.unread();
  const label = eng.channel === 'email' ? eng.subject || '(no subject)' : `${title(eng.channel)} · ${eng.queue_name}`;
  return h('li', {},
    h('button', {
      type: 'button',
      class: `eng-item state-${eng.state}${unread ? ' is-unread' : ''}`,
      testid: eng.channel === 'email' ? 'inbox-item' : 'conv-item',
      dataset: { engagement: eng.id, state: eng.state },
      'aria-current': app.selected === eng.id ? 'true' : null,
      onclick: () => select(eng.id),
    },
    h('span', { class: 'channel-icon', 'aria-hidden': 'true' }, channelIcon(eng.channel)),
    h('span', { class: 'eng-item-text' }, h('strong', {}, displayName(eng)), h('span', { class: 'muted small' }, label)),
    h('span', { class: `state-pill state-${eng.state}` }, title(eng.state)),
    unread ? h('span', { class: 'unread', testid: 'unread', title: 'Unread' }, h('span', { class: 'visually-hidden' }, 'unread')) : null));
}

/** Show an engagement; `focus` (the agent chose it) also moves focus there and opens an unread email. */
function select(id, { focus = true } = {}) {
  app.selected = id && app.views.has(id) ? id : null;
  showWorkspace(focus);
  const view = app.views.get(app.selected);
  if (view) {
    view.markSeen();
    if (focus && view.eng.state === 'assigned') view.open();
  }
  renderLists();
}

function showWorkspace(focus = false) {
  const workspace = $('workspace');
  const view = app.views.get(app.selected);
  for (const child of [...workspace.children]) if (child.id !== 'workspace-empty') child.remove();
  $('workspace-empty').hidden = Boolean(view);
  if (view) {
    workspace.append(view.node);
    view.attached();
    if (focus) view.heading.focus();
  }
}

function loadSeen() {
  try {
    app.seen = JSON.parse(localStorage.getItem(`switchboard.seen.${app.me.id}`) || '{}') || {};
  } catch {
    app.seen = {};
  }
}

function saveSeen() {
  if (!app.me) return;
  try {
    localStorage.setItem(`switchboard.seen.${app.me.id}`, JSON.stringify(app.seen));
  } catch {
    /* private mode: unread marks last for this page only */
  }
}

// --- one engagement -------------------------------------------------------------------------------

let viewCount = 0;

class EngagementView {
  constructor(eng) {
    this.id = eng.id;
    this.eng = eng;
    this.key = `v${++viewCount}`;
    this.fragments = new Map(); // id -> li
    this.messages = new Map(); // id -> {message, li}
    this.stick = true;
    this.noteTimer = null;
    this.noteDirty = false;
    this.noteSaving = null;
    const queue = app.queues.get(eng.queue);
    const spoken = eng.channel === 'voice' || eng.channel === 'video';
    const texted = eng.channel === 'chat' || eng.channel === 'email';
    const tabs = [['profile', 'Profile'], ['engagement', 'Engagement']];
    if (spoken || (eng.channel === 'chat' && queue?.transcription)) tabs.push(['transcript', 'Transcript']);
    if (texted) tabs.push(['thread', eng.channel === 'email' ? 'Email thread' : 'Chat']);
    this.tabs = tabs.map(([name]) => name);
    this.tab = texted ? 'thread' : 'profile';
    this.build(tabs);
    this.update(eng);
  }

  build(tabs) {
    const k = this.key;
    this.heading = h('h2', { id: `${k}-title`, tabindex: '-1' });
    this.stateNode = h('span', { class: 'state-pill', testid: 'state' });
    this.metaNode = h('span', { class: 'muted' });
    this.timerNode = h('span', { class: 'timer', testid: 'engagement-timer' });
    this.endButton = h('button', { type: 'button', testid: 'end', onclick: () => this.act({ type: 'end' }, 'Could not end') });
    this.transferButton = h('button', { type: 'button', testid: 'transfer', onclick: () => openTransfer(this) }, 'Transfer…');
    this.releaseButton = h('button', { type: 'button', testid: 'release', class: 'quiet', onclick: () => this.release() }, 'Release');
    this.wrapButton = h('button', { type: 'button', class: 'primary', testid: 'wrap-up-done', onclick: () => this.act({ type: 'wrap_up_done' }, 'Wrap-up not finished') }, 'Wrap-up done');
    this.wrapCountdown = h('span', { class: 'timer', testid: 'wrap-up-countdown', role: 'timer' });
    this.dispositions = h('fieldset', { class: 'dispositions', testid: 'dispositions' });
    this.tabButtons = new Map();
    this.panels = new Map();
    const tablist = h('div', { role: 'tablist', class: 'tabs', 'aria-label': 'Engagement details', onkeydown: (e) => this.tabKey(e) });
    for (const [name, label] of tabs) {
      const button = h('button', {
        type: 'button', role: 'tab', id: `${k}-tab-${name}`, testid: `tab-${name}`, 'aria-controls': `${k}-panel-${name}`,
        onclick: () => this.showTab(name, true),
      }, label);
      this.tabButtons.set(name, button);
      tablist.append(button);
      this.panels.set(name, h('div', { role: 'tabpanel', id: `${k}-panel-${name}`, class: `panel panel-${name}`, testid: `panel-${name}`, 'aria-labelledby': `${k}-tab-${name}`, tabindex: '0' }));
    }
    this.buildProfile();
    this.buildNotes();
    if (this.panels.has('transcript')) this.buildTranscript();
    if (this.panels.has('thread')) this.buildThread();
    this.node = h('article', { class: `engagement channel-${this.eng.channel}`, testid: 'engagement-view', dataset: { engagement: this.id }, 'aria-labelledby': `${k}-title` },
      h('header', { class: 'eng-head' }, this.heading, h('p', { class: 'eng-meta' }, this.metaNode, ' ', this.stateNode, ' ', this.timerNode)),
      h('div', { class: 'eng-actions' },
        h('div', { class: 'action-row' }, this.endButton, this.transferButton, this.releaseButton, this.wrapButton, this.wrapCountdown),
        this.dispositions),
      tablist,
      [...this.panels.values()]);
    this.showTab(this.tab, false);
  }

  buildProfile() {
    this.profileBody = h('div', {});
    this.panels.get('profile').append(this.profileBody);
  }

  renderProfile() {
    const eng = this.eng;
    const p = eng.profile || {};
    const c = eng.consumer || {};
    const contact = { name: p.name || c.name, phone: p.phone || c.phone, email: p.email || c.email, contact: p.contact };
    const known = Object.fromEntries(Object.entries(contact).filter(([, v]) => v));
    clear(this.profileBody,
      h('section', { class: 'block' }, h('h3', {}, 'Consumer'), fieldList(known, 'profile-contact') || h('p', { class: 'muted' }, 'Nothing known.')),
      Object.keys(p.fields || {}).length ? h('section', { class: 'block' }, h('h3', {}, 'Profile'), fieldList(p.fields, 'profile-fields')) : null,
      h('section', { class: 'block' }, h('h3', {}, 'Flow variables'), fieldList(eng.variables, 'profile-variables') || h('p', { class: 'muted' }, 'None.')),
      h('section', { class: 'block' }, h('h3', {}, 'Bot summary'), h('p', { testid: 'profile-summary' }, eng.summary || '—')),
      eng.subject ? h('section', { class: 'block' }, h('h3', {}, 'Subject'), h('p', {}, eng.subject)) : null);
  }

  buildNotes() {
    const k = this.key;
    this.notes = h('textarea', { id: `${k}-notes`, testid: 'notes', rows: 8, oninput: () => this.notesChanged() });
    this.noteStatus = h('span', { class: 'note-status muted', testid: 'note-status', role: 'status' });
    this.historyList = h('ol', { class: 'history', testid: 'history' });
    this.panels.get('engagement').append(
      h('label', { for: `${k}-notes` }, 'Notes'),
      this.notes,
      h('div', { class: 'row' }, h('button', { type: 'button', testid: 'notes-save', onclick: () => this.saveNotes() }, 'Save notes'), this.noteStatus),
      h('details', { class: 'block' }, h('summary', {}, 'History'), this.historyList));
  }

  buildTranscript() {
    const k = this.key;
    this.searchInput = h('input', { type: 'search', id: `${k}-search`, testid: 'search-input', autocomplete: 'off', placeholder: 'Words to find' });
    this.hits = h('div', { class: 'hits', testid: 'search-hits', 'aria-live': 'polite' });
    const form = h('form', { class: 'search row', role: 'search' },
      h('label', { for: `${k}-search` }, 'Search the transcript'),
      this.searchInput,
      h('button', { type: 'submit', testid: 'search-submit' }, 'Search'));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.search();
    });
    this.transcript = h('ol', { class: 'transcript', testid: 'transcript', tabindex: '0', 'aria-label': 'Live transcript', onscroll: () => this.onScroll() });
    this.jump = h('button', { type: 'button', class: 'jump', testid: 'jump-latest', hidden: true, onclick: () => this.scrollToEnd() }, 'New lines below ↓');
    this.transcriptEmpty = h('p', { class: 'muted', testid: 'transcript-empty' }, 'Nothing said yet.');
    this.panels.get('transcript').append(form, this.hits, this.transcriptEmpty, h('div', { class: 'transcript-wrap' }, this.transcript, this.jump));
  }

  buildThread() {
    const k = this.key;
    const email = this.eng.channel === 'email';
    this.thread = h('ol', { class: 'thread', testid: 'thread', 'aria-label': email ? 'Email thread' : 'Chat' });
    this.replyText = h('textarea', { id: `${k}-reply`, testid: 'reply-text', rows: email ? 6 : 2 });
    this.replySubject = email
      ? h('input', { id: `${k}-subject`, testid: 'reply-subject', type: 'text', autocomplete: 'off', oninput: () => { this.subjectEdited = true; } })
      : null;
    this.sendButton = h('button', { type: 'submit', class: 'primary', testid: 'reply-send' }, email ? 'Send reply' : 'Send');
    const form = h('form', { class: 'reply' },
      email ? [h('label', { for: `${k}-subject` }, 'Subject'), this.replySubject] : null,
      h('label', { for: `${k}-reply` }, email ? 'Reply' : 'Message'),
      this.replyText,
      h('div', { class: 'row' }, this.sendButton, h('span', { class: 'muted small' }, email ? 'Ctrl+Enter sends' : 'Enter sends, Shift+Enter for a new line')));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.sendReply();
    });
    this.replyText.addEventListener('keydown', (event) => {
      const send = email ? event.key === 'Enter' && (event.ctrlKey || event.metaKey) : event.key === 'Enter' && !event.shiftKey;
      if (send) {
        event.preventDefault();
        this.sendReply();
      }
    });
    this.panels.get('thread').append(this.thread, form);
  }

  // --- updates from the server ---

  update(eng) {
    const first = !this.renderedOnce;
    this.eng = eng;
    if (this.replySubject && (first || !this.subjectEdited)) {
      const subject = eng.subject || '';
      this.replySubject.value = subject && !/^re:/i.test(subject) ? `Re: ${subject}` : subject;
    }
    if (!this.noteDirty && document.activeElement !== this.notes) this.notes.value = eng.notes || '';
    for (const message of eng.messages || []) this.addMessage(message, { quiet: true });
    this.render();
    this.renderedOnce = true;
  }

  render() {
    const eng = this.eng;
    const queue = app.queues.get(eng.queue);
    this.heading.textContent = displayName(eng);
    this.metaNode.textContent = `${title(eng.channel)} · ${eng.queue_name || eng.queue}`;
    this.stateNode.textContent = title(eng.state);
    this.stateNode.className = `state-pill state-${eng.state}`;
    this.stateNode.dataset.state = eng.state;
    this.node.dataset.state = eng.state;
    const handling = ['active', 'assigned', 'open'].includes(eng.state);
    this.endButton.textContent = eng.channel === 'email' ? 'Resolve' : 'End';
    this.endButton.hidden = !handling;
    this.transferButton.hidden = !handling;
    this.releaseButton.hidden = !handling;
    this.wrapButton.hidden = eng.state !== 'wrap_up';
    this.wrapCountdown.hidden = eng.state !== 'wrap_up' || !eng.wrap_up_until;
    this.renderDispositions(queue);
    this.renderProfile();
    clear(this.historyList, (eng.history || []).map((entry) => h('li', {},
      h('time', {}, timeOf(entry.at)), ' ', title(entry.event), ' ',
      h('span', { class: 'muted' }, [entry.actor, entry.agent && entry.agent !== entry.actor?.split(':')[1] ? `→ ${entry.agent}` : null, entry.queue ? `(${entry.queue})` : null, entry.reason ? `— ${entry.reason}` : null].filter(Boolean).join(' ')))));
    if (this.replyText) {
      const canWrite = handling;
      this.replyText.disabled = !canWrite;
      this.sendButton.disabled = !canWrite;
      if (this.replySubject) this.replySubject.disabled = !canWrite;
    }
    if (this.transcriptEmpty && queue && !queue.transcription) this.transcriptEmpty.textContent = 'No transcription for this queue.';
    this.tick(app.conn ? app.conn.serverNow() : Date.now() / 1000);
  }

  renderDispositions(queue) {
    const eng = this.eng;
    const options = queue ? queue.dispositions : (eng.dispositions || []).map((code) => ({ code, label: code }));
    const editable = HELD.has(eng.state);
    const chosen = new Set(eng.dispositions || []);
    this.dispositions.hidden = !options.length;
    const legend = h('legend', {}, 'Disposition', queue?.disposition_required ? h('span', { class: 'required' }, ' (required)') : null);
    clear(this.dispositions, legend, options.map((d) => {
      const id = `${this.key}-disp-${d.code}`;
      return h('span', { class: 'check' },
        h('input', { type: 'checkbox', id, testid: `disposition-${d.code}`, value: d.code, checked: chosen.has(d.code), disabled: !editable, onchange: () => this.dispose() }),
        h('label', { for: id }, d.label || d.code));
    }));
  }

  async dispose() {
    const codes = [...this.dispositions.querySelectorAll('input:checked')].map((i) => i.value);
    try {
      await app.conn.request({ type: 'disposition', engagement: this.id, codes });
    } catch (error) {
      this.failed(error, 'Disposition not saved');
      this.renderDispositions(app.queues.get(this.eng.queue));
    }
  }

  tick(now) {
    const eng = this.eng;
    if (eng.state === 'wrap_up' && eng.wrap_up_until) {
      const left = eng.wrap_up_until - now;
      this.wrapCountdown.textContent = left > 0 ? `Wrap-up ends in ${clock(left)}` : 'Wrap-up time is up';
      this.timerNode.textContent = '';
    } else if (eng.state === 'active') {
      const accepted = [...(eng.history || [])].reverse().find((e) => e.event === 'accepted');
      this.timerNode.textContent = accepted ? clock(now - accepted.at) : '';
    } else {
      this.timerNode.textContent = '';
    }
  }

  addFragments(fragments) {
    if (!this.transcript) return;
    for (const fragment of fragments) {
      let li = this.fragments.get(fragment.id);
      if (!li) {
        li = h('li', { class: 'fragment', testid: 'fragment', dataset: { fragmentId: fragment.id } });
        this.fragments.set(fragment.id, li);
        this.transcript.append(li);
      }
      li.classList.toggle('partial', !fragment.final);
      li.classList.toggle('final', Boolean(fragment.final));
      li.dataset.final = fragment.final ? 'true' : 'false';
      clear(li,
        h('span', { class: `speaker speaker-${fragment.speaker}` }, this.speakerName(fragment.speaker)),
        h('span', { class: 'text' }, fragment.text),
        fragment.final ? null : h('span', { class: 'visually-hidden' }, ' (still speaking)'),
        h('time', { class: 'muted small' }, timeOf(fragment.ts)));
    }
    this.transcriptEmpty.hidden = this.fragments.size > 0;
    if (this.stick) this.scrollToEnd();
    else this.jump.hidden = false;
  }

  speakerName(speaker) {
    if (speaker === 'consumer') return displayName(this.eng);
    if (speaker === 'agent') return app.me ? app.me.name : 'You';
    return title(speaker);
  }

  onScroll() {
    const t = this.transcript;
    this.stick = t.scrollTop + t.clientHeight >= t.scrollHeight - 24;
    if (this.stick) this.jump.hidden = true;
  }

  scrollToEnd() {
    if (!this.transcript) return;
    this.transcript.scrollTop = this.transcript.scrollHeight;
    this.stick = true;
    this.jump.hidden = true;
  }

  async search() {
    const query = this.searchInput.value.trim();
    if (!query) {
      clear(this.hits);
      return;
    }
    clear(this.hits, h('p', { class: 'muted' }, 'Searching…'));
    try {
      const result = await app.conn.request({ type: 'search', engagement: this.id, query });
      const hits = result.hits || [];
      clear(this.hits,
        h('p', { class: 'muted small', testid: 'search-count' }, hits.length ? `${hits.length} line${hits.length > 1 ? 's' : ''} match “${result.query}”` : `No line matches “${result.query}”.`),
        hits.length ? h('ul', { class: 'hit-list' }, hits.map((hit) => h('li', {},
          h('button', { type: 'button', class: 'hit', testid: 'search-hit', dataset: { fragment: hit.fragment }, onclick: () => this.reveal(hit.fragment) },
            h('span', { class: 'speaker' }, `${this.speakerName(hit.speaker)}:`), ' ', highlighted(hit.text, hit.spans))))) : null);
    } catch (error) {
      clear(this.hits);
      this.failed(error, 'Search failed');
    }
  }

  reveal(fragmentId) {
    const li = this.fragments.get(fragmentId);
    if (!li) return;
    this.stick = false;
    li.scrollIntoView({ block: 'center' });
    li.classList.remove('flash');
    void li.offsetWidth; // restart the highlight animation
    li.classList.add('flash');
  }

  addMessage(message, { quiet = false } = {}) {
    if (!this.thread) return;
    const known = this.messages.get(message.id);
    if (known) return;
    const li = h('li', { class: `message dir-${message.direction}`, testid: 'message', dataset: { message: message.id, direction: message.direction } },
      h('p', { class: 'message-head muted small' }, h('strong', {}, message.sender), ' · ', h('time', {}, timeOf(message.ts))),
      message.subject ? h('p', { class: 'message-subject', testid: 'message-subject' }, message.subject) : null,
      h('p', { class: 'message-text', testid: 'message-text' }, message.text));
    this.messages.set(message.id, { message, li });
    this.thread.append(li);
    this.thread.scrollTop = this.thread.scrollHeight;
    if (app.selected === this.id && document.visibilityState === 'visible') this.markSeen();
    if (!quiet) renderLists();
  }

  inboundCount() {
    let n = 0;
    for (const { message } of this.messages.values()) if (message.direction === 'in') n += 1;
    return n;
  }

  unread() {
    if (this.eng.channel === 'email' && this.eng.state === 'assigned') return true;
    return this.inboundCount() > (app.seen[this.id] || 0);
  }

  markSeen() {
    const count = this.inboundCount();
    if ((app.seen[this.id] || 0) !== count) {
      app.seen[this.id] = count;
      saveSeen();
    }
  }

  attached() {
    if (this.stick) this.scrollToEnd();
    if (this.thread) this.thread.scrollTop = this.thread.scrollHeight;
  }

  // --- tabs ---

  showTab(name, focus) {
    this.tab = name;
    for (const [tab, button] of this.tabButtons) {
      const on = tab === name;
      button.setAttribute('aria-selected', on ? 'true' : 'false');
      button.tabIndex = on ? 0 : -1;
      this.panels.get(tab).hidden = !on;
    }
    if (focus) this.tabButtons.get(name).focus();
    if (name === 'transcript' && this.stick) this.scrollToEnd();
  }

  tabKey(event) {
    const index = this.tabs.indexOf(this.tab);
    let next = null;
    if (event.key === 'ArrowRight') next = this.tabs[(index + 1) % this.tabs.length];
    else if (event.key === 'ArrowLeft') next = this.tabs[(index - 1 + this.tabs.length) % this.tabs.length];
    else if (event.key === 'Home') next = this.tabs[0];
    else if (event.key === 'End') next = this.tabs[this.tabs.length - 1];
    if (next) {
      event.preventDefault();
      this.showTab(next, true);
    }
  }

  // --- actions ---

  async act(frame, what) {
    try {
      await app.conn.request({ ...frame, engagement: this.id });
      return true;
    } catch (error) {
      this.failed(error, what);
      return false;
    }
  }

  /** Say what went wrong; an engagement the server says is not ours (or gone) leaves the desk. */
  failed(error, what) {
    if (error.code === 'not_yours' || error.code === 'not_found') {
      dropView(this.id, `${displayName(this.eng)} is no longer on your desk.`);
      return;
    }
    showError(error, what);
  }

  async open() {
    if (this.opening) return;
    this.opening = true;
    await this.act({ type: 'open' }, 'Could not open');
    this.opening = false;
  }

  async release() {
    await this.flushNotes();
    this.leaving = 'released back to the queue';
    if (await this.act({ type: 'release' }, 'Could not release')) dropView(this.id, `${displayName(this.eng)}: ${this.leaving}.`);
    else this.leaving = null;
  }

  async sendReply() {
    const text = this.replyText.value;
    if (!text.trim()) {
      this.replyText.focus();
      return;
    }
    const frame = { type: 'send', engagement: this.id, text };
    if (this.replySubject && this.replySubject.value.trim()) frame.subject = this.replySubject.value.trim();
    this.sendButton.disabled = true;
    try {
      await app.conn.request(frame);
      if (this.replyText.value === text) this.replyText.value = '';
    } catch (error) {
      this.failed(error, 'Not sent');
    } finally {
      this.sendButton.disabled = !['active', 'assigned', 'open'].includes(this.eng.state);
    }
  }

  notesChanged() {
    this.noteDirty = true;
    this.noteStatus.textContent = 'Unsaved changes…';
    this.noteStatus.dataset.state = 'dirty';
    clearTimeout(this.noteTimer);
    this.noteTimer = setTimeout(() => this.saveNotes(), NOTE_DEBOUNCE_MS);
  }

  async saveNotes() {
    clearTimeout(this.noteTimer);
    if (this.noteSaving) {
      this.noteAgain = true;
      return this.noteSaving;
    }
    const text = this.notes.value;
    this.noteStatus.textContent = 'Saving…';
    this.noteStatus.dataset.state = 'saving';
    this.noteSaving = app.conn.request({ type: 'note', engagement: this.id, text }).then(
      () => {
        if (this.notes.value === text) {
          this.noteDirty = false;
          this.noteStatus.textContent = `Saved ${timeOf(Date.now() / 1000)}`;
          this.noteStatus.dataset.state = 'saved';
          this.eng = { ...this.eng, notes: text };
        }
      },
      (error) => {
        if (error.code === 'not_yours' || error.code === 'not_found') {
          this.noteDirty = false;
          this.failed(error, 'Notes not saved');
          return;
        }
        this.noteDirty = true;
        this.noteStatus.dataset.state = 'error';
        this.noteStatus.textContent = error.code === 'not_connected' ? 'Not saved yet: will save when back online.' : `Not saved: ${error.message}`;
      },
    ).finally(() => {
      this.noteSaving = null;
      if (this.noteAgain) {
        this.noteAgain = false;
        this.saveNotes();
      }
    });
    return this.noteSaving;
  }

  flushNotes() {
    return this.noteDirty ? this.saveNotes() : Promise.resolve();
  }

  resaveNotes() {
    if (this.noteDirty) this.saveNotes();
  }

  destroy() {
    clearTimeout(this.noteTimer);
    this.node.remove();
  }
}

// --- transfer -------------------------------------------------------------------------------------

let transferring = null;

async function openTransfer(view) {
  const dialog = $('transfer-dialog');
  transferring = view;
  $('transfer-what').textContent = `${displayName(view.eng)} · ${title(view.eng.channel)} · ${view.eng.queue_name}`;
  $('transfer-error').hidden = true;
  const queueSelect = $('transfer-queue');
  const agentSelect = $('transfer-agent');
  clear(queueSelect, h('option', { value: '' }, 'Loading…'));
  clear(agentSelect, h('option', { value: '' }, 'Loading…'));
  $('transfer-submit').disabled = true;
  dialog.showModal();
  try {
    const [queues, agents] = await Promise.all([
      api('/v1/queues', { token: app.token }),
      api('/v1/agents', { token: app.token }),
    ]);
    app.queues = new Map(queues.map((q) => [q.id, q]));
    const channel = view.eng.channel;
    const fit = queues.filter((q) => q.channel === channel);
    fit.sort((a, b) => (a.id === view.eng.queue) - (b.id === view.eng.queue));
    clear(queueSelect, fit.map((q) => h('option', { value: q.id }, `${q.name}${q.id === view.eng.queue ? ' (current)' : ''} — ${q.stats.waiting} waiting, ${q.stats.available} available`)));
    const others = agents.filter((a) => a.id !== app.me.id);
    clear(agentSelect, others.map((a) => {
      const room = (a.capacity?.[channel] ?? 1) > 0;
      const state = !a.connected ? 'signed out' : !room ? `no ${channel}` : statusLabel(a.status, a.reason).toLowerCase();
      return h('option', { value: a.id, disabled: !a.connected || !room }, `${a.name} — ${state}`);
    }));
    if (!fit.length) clear(queueSelect, h('option', { value: '' }, `No ${channel} queue`));
    const firstAgent = others.find((a) => a.connected && (a.capacity?.[channel] ?? 1) > 0);
    if (firstAgent) agentSelect.value = firstAgent.id;
    if (!others.length) clear(agentSelect, h('option', { value: '' }, 'No other agent'));
    $('transfer-submit').disabled = false;
  } catch (error) {
    $('transfer-error').textContent = `Could not load queues and agents: ${error.message}`;
    $('transfer-error').hidden = false;
  }
}

async function submitTransfer(event) {
  event.preventDefault();
  const view = transferring;
  if (!view) return;
  const kind = document.querySelector('input[name="transfer-kind"]:checked').value;
  const target = kind === 'queue' ? $('transfer-queue').value : $('transfer-agent').value;
  const errorLine = $('transfer-error');
  if (!target) {
    errorLine.textContent = kind === 'queue' ? 'Choose a queue.' : 'Choose an agent.';
    errorLine.hidden = false;
    return;
  }
  const label = kind === 'queue' ? $('transfer-queue').selectedOptions[0]?.textContent.split(' — ')[0] : $('transfer-agent').selectedOptions[0]?.textContent.split(' — ')[0];
  $('transfer-submit').disabled = true;
  await view.flushNotes();
  view.leaving = `transferred to ${label}`; // the server tells this desk before it answers
  try {
    await app.conn.request({ type: 'transfer', engagement: view.id, [kind]: target });
    $('transfer-dialog').close();
    dropView(view.id, `${displayName(view.eng)}: ${view.leaving}.`);
  } catch (error) {
    view.leaving = null;
    errorLine.textContent = `Not transferred: ${error.message}`;
    errorLine.hidden = false;
  } finally {
    $('transfer-submit').disabled = false;
  }
}

// --- wiring ---------------------------------------------------------------------------------------

function wire() {
  $('status-select').addEventListener('change', changeStatus);
  $('sign-out').addEventListener('click', signOut);
  $('sound-toggle').addEventListener('click', () => {
    app.beeper.enabled = !app.beeper.enabled;
    $('sound-toggle').setAttribute('aria-pressed', String(app.beeper.enabled));
    $('sound-toggle').textContent = app.beeper.enabled ? 'Sound on' : 'Sound off';
  });
  document.addEventListener('keydown', onKey);
  $('transfer-form').addEventListener('submit', submitTransfer);
  $('transfer-cancel').addEventListener('click', () => $('transfer-dialog').close());
  $('transfer-queue').addEventListener('change', () => {
    $('transfer-to-queue').checked = true;
  });
  $('transfer-agent').addEventListener('change', () => {
    $('transfer-to-agent').checked = true;
  });
  $('transfer-dialog').addEventListener('close', () => {
    transferring = null;
  });
  document.addEventListener('visibilitychange', () => {
    const view = app.views.get(app.selected);
    if (view && document.visibilityState === 'visible') {
      view.markSeen();
      renderLists();
    }
  });
  window.addEventListener('beforeunload', (event) => {
    if ([...app.views.values()].some((v) => v.noteDirty)) {
      for (const view of app.views.values()) view.flushNotes();
      event.preventDefault();
      event.returnValue = '';
    }
  });
}

wire();
boot();
