// Small DOM helpers shared by the agent desktop and the supervisor page: element building (text only,
// never HTML from data), toasts, the connection banner, the sign-in screen, and labels.

import { api, tokenClaims } from './protocol.js';

/** Build an element: h('button', {class: 'x', onclick: f, dataset: {a: 1}}, 'text', child...). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'testid') node.dataset.testid = value;
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (key === 'text') node.textContent = value;
    else if (key in node && typeof value !== 'string') node[key] = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** Text with the given [start, end) code-point spans wrapped in <mark> (spans come from the server). */
export function highlighted(text, spans) {
  const chars = Array.from(text); // the server counts code points, not UTF-16 units
  const out = [];
  let at = 0;
  for (const [start, end] of spans || []) {
    if (start < at || end <= start) continue;
    if (start > at) out.push(chars.slice(at, start).join(''));
    out.push(h('mark', {}, chars.slice(start, end).join('')));
    at = end;
  }
  if (at < chars.length) out.push(chars.slice(at).join(''));
  return out;
}

export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, '0')}`;
}

export function timeOf(unixSeconds) {
  if (!unixSeconds) return '';
  return new Date(unixSeconds * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function title(text) {
  const s = String(text ?? '').replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export const REASONS = [
  ['break', 'Break'],
  ['lunch', 'Lunch'],
  ['training', 'Training'],
  ['meeting', 'Meeting'],
];

const REASON_LABELS = {
  ...Object.fromEntries(REASONS),
  missed: 'Missed a call',
  connection_lost: 'Connection lost',
};

export function reasonLabel(reason) {
  return REASON_LABELS[reason] || title(reason);
}

export function statusLabel(status, reason) {
  if (status === 'ready') return 'Ready';
  if (status === 'offline') return 'Offline';
  if (status === 'not_ready') return reason ? `Not ready · ${reasonLabel(reason)}` : 'Not ready';
  return title(status || 'unknown');
}

const ERROR_TEXT = {
  disposition_required: 'Choose a disposition first.',
  unknown_disposition: 'That disposition is not one of this queue’s.',
  not_found: 'It is gone (expired, taken or over).',
  not_yours: 'That is not yours any more.',
  invalid_state: 'That does not fit the current state.',
  no_capacity: 'That agent is not signed in or has no room for it.',
  not_enabled: 'That is not enabled for this queue.',
  too_large: 'That is too long.',
  rate_limited: 'Too many requests; slow down a little.',
  unavailable: 'The server cannot do that right now; try again.',
  forbidden: 'You are not allowed to do that.',
};

/** A sentence for an error reply: what went wrong in words, then the server's own message. */
export function errorText(error) {
  const base = ERROR_TEXT[error.code];
  if (!base) return error.message || String(error.code);
  return error.message ? `${base} (${error.message})` : base;
}

// --- toasts ---------------------------------------------------------------------------------------

let toastArea = null;

export function toast(message, { kind = 'info', timeoutMs = 6000 } = {}) {
  if (!toastArea) toastArea = document.getElementById('toasts');
  const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss' }, '×');
  const node = h('div', { class: `toast toast-${kind}`, testid: 'toast', role: kind === 'error' ? 'alert' : 'status' },
    h('span', { class: 'toast-text' }, message), close);
  const remove = () => node.remove();
  close.addEventListener('click', remove);
  toastArea.append(node);
  if (timeoutMs) setTimeout(remove, timeoutMs);
  while (toastArea.children.length > 5) toastArea.firstElementChild.remove();
  return node;
}

export function showError(error, what) {
  const text = errorText(error);
  toast(what ? `${what}: ${text}` : text, { kind: 'error' });
}

// --- connection banner ----------------------------------------------------------------------------

/** Keep the banner and the header's indicator honest about the connection. */
export function connectionView(connection, banner, indicator) {
  let ticker = null;
  const retryButton = h('button', { type: 'button', class: 'link', onclick: () => connection.retryNow() }, 'Retry now');
  const text = h('span', {});
  banner.classList.remove('fatal');
  clear(banner, text, ' ', retryButton);
  const render = () => {
    const state = connection.state;
    indicator.dataset.state = state;
    indicator.textContent = { connected: 'Online', connecting: 'Connecting…', reconnecting: 'Reconnecting…', closed: 'Offline' }[state];
    if (state === 'reconnecting') {
      const wait = connection.nextRetryAt ? Math.max(0, (connection.nextRetryAt - Date.now()) / 1000) : 0;
      const lead = connection.welcome ? 'Connection lost. Reconnecting…' : 'Cannot reach the server. Reconnecting…';
      text.textContent = wait >= 1 ? `${lead} next try in ${Math.ceil(wait)} s` : lead;
      banner.hidden = false;
      if (!ticker) ticker = setInterval(render, 500);
    } else {
      banner.hidden = true;
      clearInterval(ticker);
      ticker = null;
    }
    document.body.dataset.connection = state;
  };
  return render;
}

// --- sign-in --------------------------------------------------------------------------------------

/** The token from `?token=` (then removed from the address bar), or the one kept for this tab. */
export function takeToken(storageKey) {
  const params = new URLSearchParams(location.search);
  const fromUrl = params.get('token');
  if (fromUrl) {
    sessionStorage.setItem(storageKey, fromUrl);
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? `?${rest}` : '') + location.hash);
    return fromUrl;
  }
  return sessionStorage.getItem(storageKey);
}

/** Why a token cannot be used here, before asking the server (or null when it looks fine). */
export function tokenProblem(token, role) {
  const claims = tokenClaims(token);
  if (!claims) return 'That is not a Switchboard token.';
  if (claims.role && claims.role !== role) {
    return claims.role === 'supervisor'
      ? 'This is a supervisor token: use the supervisor page.'
      : `This is a ${claims.role} token, not a ${role} one.`;
  }
  if (typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now()) return 'This token has expired. Get a new one.';
  return null;
}

/**
 * Fill `section` with the sign-in screen: the demo picker when the server offers one, and a form to
 * paste a token. Calls onToken(token) with the chosen token.
 */
export async function renderSignIn(section, { role, message, onToken }) {
  const other = role === 'agent' ? 'supervisor' : 'agent';
  const note = h('p', { class: 'signin-message', testid: 'signin-message', role: 'alert' }, message || '');
  note.hidden = !message;
  const input = h('textarea', { id: 'token-input', testid: 'token-input', rows: 3, spellcheck: 'false', autocomplete: 'off', required: true });
  const form = h('form', { class: 'token-form' },
    h('label', { for: 'token-input' }, `Paste your ${role} token`),
    input,
    h('button', { type: 'submit', testid: 'token-submit' }, 'Sign in'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (token) onToken(token);
  });
  const picker = h('div', { class: 'picker', testid: 'picker' });
  clear(section, h('h1', {}, role === 'agent' ? 'Sign in to the agent desktop' : 'Sign in to the supervisor console'), note, picker, form);
  section.hidden = false;
  let people = null;
  try {
    people = await api('/v1/demo/people');
  } catch {
    people = null; // no demo sign-in on this server: the token form is the way in
  }
  if (!people || !people.enabled) {
    input.focus();
    return;
  }
  const mine = role === 'agent' ? people.agents : people.supervisors;
  const theirs = role === 'agent' ? people.supervisors : people.agents;
  const otherPage = other === 'agent' ? '/' : '/supervisor';
  clear(picker,
    h('h2', { id: 'picker-title' }, `Demo ${role}s`),
    h('p', { class: 'hint' }, 'This server runs the demo: pick who you are.'),
    h('ul', { class: 'people', 'aria-labelledby': 'picker-title' },
      mine.map((p) => h('li', {}, h('button', { type: 'button', class: 'person', testid: `picker-${role}-${p.id}`, onclick: () => onToken(p.token) },
        h('strong', {}, p.name), h('span', { class: 'muted small' }, p.id))))),
    theirs.length ? h('p', { class: 'hint' }, `${title(other)}s: `,
      theirs.map((p, i) => [i ? ', ' : '', h('a', { href: `${otherPage}?token=${encodeURIComponent(p.token)}`, testid: `picker-${other}-${p.id}` }, p.name)])) : null);
  picker.querySelector('button')?.focus();
}

/** A WebAudio beep (no audio file); silent until the page has had a user gesture. */
export class Beeper {
  constructor() {
    this.ctx = null;
    this.enabled = true;
    const unlock = () => {
      if (!this.ctx && window.AudioContext) {
        try {
          this.ctx = new AudioContext();
        } catch {
          this.ctx = null;
        }
      }
      if (this.ctx && this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
    };
    window.addEventListener('pointerdown', unlock, { capture: true });
    window.addEventListener('keydown', unlock, { capture: true });
  }

  beep() {
    const ctx = this.ctx;
    if (!this.enabled || !ctx || ctx.state !== 'running') return;
    const t = ctx.currentTime;
    for (const [i, freq] of [880, 660].entries()) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = 'sine';
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, t + i * 0.18);
      gain.gain.exponentialRampToValueAtTime(0.08, t + i * 0.18 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + i * 0.18 + 0.16);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t + i * 0.18);
      osc.stop(t + i * 0.18 + 0.17);
    }
  }
}
