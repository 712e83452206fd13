// The dashboard's shell: sign-in, the navigation, and a router over the URL's hash
// (`#/stacks/<id>`), so ids appear in the address bar but the key never does.

import { ApiError, session, signOut } from './api.js';
import { h, fill, errorBox } from './dom.js';
import { every } from './live.js';
import { renderSignIn } from './views/signin.js';
import { renderOverview } from './views/overview.js';
import { renderStacks } from './views/stacks.js';
import { renderStack } from './views/stack.js';
import { renderAgents } from './views/agents.js';
import { renderAgent } from './views/agent.js';
import { renderAudit } from './views/audit.js';

const main = document.getElementById('main');
const top = document.getElementById('top');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const banner = document.getElementById('banner');

const ROUTES = [
  { pattern: /^\/overview$/, view: renderOverview, nav: 'overview' },
  { pattern: /^\/stacks$/, view: renderStacks, nav: 'stacks' },
  { pattern: /^\/stacks\/([0-9a-f-]{36})$/, view: renderStack, nav: 'stacks' },
  { pattern: /^\/agents$/, view: renderAgents, nav: 'agents', admin: true },
  { pattern: /^\/agents\/([0-9a-f-]{36})$/, view: renderAgent, nav: 'agents', admin: true },
  { pattern: /^\/audit$/, view: renderAudit, nav: 'audit', admin: true },
];

const NAV = [
  { id: 'overview', text: 'Overview' },
  { id: 'stacks', text: 'Stacks' },
  { id: 'agents', text: 'Agents', admin: true },
  { id: 'audit', text: 'Audit log', admin: true },
];

/** Cleanups of the view on screen (its timers). */
let cleanups = [];
/** Bumped on every navigation, so a slow view that finishes late draws nothing. */
let generation = 0;

function stopView() {
  for (const stop of cleanups) stop();
  cleanups = [];
}

function showBanner(text) {
  banner.textContent = text;
  banner.hidden = !text;
}

/** Back to the sign-in form, the key forgotten, with `message` if there is one. */
function toSignIn(message) {
  stopView();
  signOut();
  generation += 1;
  top.hidden = true;
  showBanner('');
  renderSignIn(main, { message, signedIn: () => { location.hash = '#/overview'; route(); } });
}

/** What every failure does: a refused key signs out; others are shown. */
function failure(err) {
  if (err instanceof ApiError && err.status === 401) {
    toSignIn('Your key was refused: it is unknown or has been revoked. Sign in again.');
    return true;
  }
  if (err instanceof ApiError && err.status === 0) {
    showBanner('The server cannot be reached. Retrying every few seconds…');
    return true;
  }
  return false;
}

function drawNav(me, current) {
  fill(nav, NAV.filter((item) => !item.admin || me.role === 'admin').map((item) => h('a', {
    href: `#/${item.id}`,
    'aria-current': item.id === current ? 'page' : null,
    text: item.text,
  })));
  who.textContent = me.role === 'admin' ? 'admin' : 'generator';
  who.title = me.id || '';
}

async function route() {
  stopView();
  const mine = ++generation;
  const me = session();
  if (!me) {
    toSignIn();
    return;
  }
  const [path, search] = (location.hash.replace(/^#/, '') || '/overview').split('?');
  const found = ROUTES.map((r) => ({ r, m: path.match(r.pattern) })).find((x) => x.m);
  top.hidden = false;
  showBanner('');
  if (!found || (found.r.admin && me.role !== 'admin')) {
    drawNav(me, null);
    fill(main, h('h1', { text: 'Not found' }),
      h('p', { class: 'empty', text: 'There is no such page for this key.' }));
    return;
  }
  drawNav(me, found.r.nav);
  const ctx = {
    me,
    params: found.m.slice(1),
    query: new URLSearchParams(search ?? ''),
    // A refresh that keeps the view current while it is on screen.
    live(tick) {
      cleanups.push(every(async () => {
        try {
          await tick();
          if (mine === generation) showBanner('');
        } catch (err) {
          if (mine === generation && !failure(err)) showBanner(err.message);
        }
      }));
    },
    current: () => mine === generation,
  };
  fill(main, h('p', { class: 'muted', text: 'Loading…' }));
  try {
    const node = await found.r.view(ctx);
    if (mine !== generation) return;
    fill(main, node);
    const heading = main.querySelector('h1');
    if (heading) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
  } catch (err) {
    if (mine !== generation || failure(err)) {
      if (err instanceof ApiError && err.status === 0 && mine === generation) {
        fill(main, errorBox(err));
        cleanups.push(every(() => route()));
      }
      return;
    }
    fill(main, errorBox(err));
  }
}

document.getElementById('sign-out').addEventListener('click', () => {
  toSignIn('Signed out.');
  history.replaceState(null, '', '#/');
});
window.addEventListener('hashchange', route);
route();
