// Building the page from API data. Everything the API says is put in the page as
// text (createTextNode / textContent), never parsed as HTML, so a stack whose name
// looks like an HTML tag with a script is shown as those characters.

/**
 * An element: `attrs` sets properties and attributes (`class`, `text`, `on*`
 * handlers, `data-*`, `aria-*`, anything else as an attribute); children are nodes,
 * strings (added as text), arrays of those, or null (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = String(value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'value') node.value = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A token safe in a class name: the API's enum values are, anything else is not. */
function token(value) {
  return /^[a-z_]{1,32}$/.test(String(value)) ? value : 'unknown';
}

/** A status shown as a coloured label, with the status as its text. */
export function badge(status, label) {
  const text = label ?? (status === undefined || status === null ? 'unknown' : String(status));
  return h('span', { class: `badge badge-${token(status)}`, text });
}

/** An id shortened to its last 8 characters: the ids are UUID v7, whose first
 * characters are a timestamp shared by everything made in the same minutes. */
export function short(id) {
  return `…${String(id).slice(-8)}`;
}

/** An id, shortened, with the whole id in the title. */
export function shortId(id) {
  return h('code', { title: id, text: short(id) });
}

/** A time as "12 s ago" etc., the exact time in the title. */
export function ago(iso, now = Date.now()) {
  if (!iso) return h('span', { class: 'muted', text: 'never' });
  const secs = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  let text;
  if (Number.isNaN(secs)) text = String(iso);
  else if (secs < 60) text = `${secs} s ago`;
  else if (secs < 3600) text = `${Math.floor(secs / 60)} min ago`;
  else if (secs < 86400) text = `${Math.floor(secs / 3600)} h ago`;
  else text = `${Math.floor(secs / 86400)} d ago`;
  return h('time', { datetime: iso, title: iso, text });
}

/** A map of strings as `key=value` chips, or "none". */
export function chips(map) {
  const entries = Object.entries(map ?? {});
  if (entries.length === 0) return h('span', { class: 'muted', text: 'none' });
  return h('ul', { class: 'chips' },
    entries.map(([k, v]) => h('li', {}, h('code', { text: v === '' ? k : `${k}=${v}` }))));
}

/** A definition list of [term, value] pairs. */
export function facts(pairs) {
  return h('dl', { class: 'facts' },
    pairs.filter(Boolean).map(([term, value]) => [h('dt', { text: term }), h('dd', {}, value)]));
}

/**
 * A table: `columns` are `{ title, cell(row) }`; `rowClass(row)` may mark a row;
 * `empty` is the text shown when there are no rows.
 */
export function table(columns, rows, { empty = 'Nothing here yet.', rowClass, label } = {}) {
  if (rows.length === 0) return h('p', { class: 'empty', text: empty });
  return h('div', { class: 'table-wrap' },
    h('table', { 'aria-label': label },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', text: c.title })))),
      h('tbody', {}, rows.map((row) => h('tr', { class: rowClass ? rowClass(row) : null },
        columns.map((c) => h('td', { 'data-label': c.title }, c.cell(row))))))));
}

/** A section with a heading and a body that can be refilled. */
export function section(title, ...children) {
  const body = h('div', { class: 'section-body' }, ...children);
  const node = h('section', { class: 'card' }, h('h2', { text: title }), body);
  return { node, body };
}

/** An error state: what failed, in words. */
export function errorBox(err) {
  const what = err && err.status === 404
    ? 'Not found, or not visible to this key.'
    : (err && err.message) || 'Something went wrong.';
  return h('p', { class: 'error', role: 'alert', text: what });
}

/** A link to an in-app route. */
export function link(route, text, attrs = {}) {
  return h('a', { href: `#${route}`, ...attrs }, text);
}
