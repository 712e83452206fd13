// Pages of a listing and keeping a view current. Listings are read one page at a time
// with the API's cursors; nothing ever loads a whole collection.

import { h, fill, errorBox } from './dom.js';

/** How often a visible view refreshes. */
export const PERIOD_MS = 2000;

/**
 * Calls `tick` every PERIOD_MS while the tab is visible (and at once when it becomes
 * visible again); a tick still running is not started twice. Returns `stop`.
 */
export function every(tick, period = PERIOD_MS) {
  let running = false;
  let stopped = false;
  const run = async () => {
    if (running || stopped || document.hidden) return;
    running = true;
    try {
      await tick();
    } finally {
      running = false;
    }
  };
  const timer = setInterval(run, period);
  const onVisible = () => { if (!document.hidden) run(); };
  document.addEventListener('visibilitychange', onVisible);
  return () => {
    stopped = true;
    clearInterval(timer);
    document.removeEventListener('visibilitychange', onVisible);
  };
}

/**
 * A paged listing: `load(cursor)` answers `{items, next_cursor}`; `render(items)`
 * builds the rows. `refresh()` reloads the page shown (a no-op on the page when the
 * answer did not change, so focus and scroll stay).
 */
export function pager(load, render, { label = 'Pages' } = {}) {
  const cursors = [null];
  let index = 0;
  let shownJson = null;
  const content = h('div', { class: 'pager-content', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', class: 'secondary', text: '← Previous', disabled: true });
  const next = h('button', { type: 'button', class: 'secondary', text: 'Next →', disabled: true });
  const where = h('span', { class: 'muted' });
  const nav = h('nav', { class: 'pager', 'aria-label': label }, prev, where, next);
  const node = h('div', {}, content, nav);

  async function show(force) {
    let page;
    try {
      page = await load(cursors[index]);
    } catch (err) {
      if (err && (err.status === 401 || err.status === 0)) throw err;
      shownJson = null;
      fill(content, errorBox(err));
      return;
    }
    const json = JSON.stringify(page);
    if (!force && json === shownJson) return;
    shownJson = json;
    fill(content, render(page.items ?? []));
    cursors.length = index + 1;
    if (page.next_cursor) cursors.push(page.next_cursor);
    prev.disabled = index === 0;
    next.disabled = !page.next_cursor;
    where.textContent = `page ${index + 1}`;
    nav.hidden = index === 0 && !page.next_cursor;
  }

  prev.addEventListener('click', () => { if (index > 0) { index -= 1; show(true); } });
  next.addEventListener('click', () => {
    if (index + 1 < cursors.length) { index += 1; show(true); }
  });
  return { node, refresh: () => show(false), reload: () => show(true) };
}
