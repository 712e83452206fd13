// Sign-in: an admin or generator key, checked with the server (`POST /auth/pak`)
// and kept in this tab's session storage only.

import { ApiError, signIn } from '../api.js';
import { h, fill } from '../dom.js';

export function renderSignIn(main, { message, signedIn }) {
  const input = h('input', {
    id: 'key', name: 'key', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true, placeholder: 'brokkr_…', 'aria-describedby': 'key-help',
  });
  const status = h('p', { id: 'sign-in-status', class: message ? 'notice' : 'notice hidden', role: 'status', text: message ?? '' });
  const button = h('button', { type: 'submit', text: 'Sign in' });
  const form = h('form', { class: 'card sign-in', id: 'sign-in', novalidate: true },
    h('h1', { text: 'Sign in to Brokkr' }),
    h('label', { for: 'key', text: 'API key (admin or generator)' }),
    input,
    h('p', { id: 'key-help', class: 'muted', text: 'The key stays in this browser tab until you sign out or close it.' }),
    button,
    status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      status.textContent = 'Enter a key.';
      status.className = 'notice error';
      return;
    }
    button.disabled = true;
    status.textContent = 'Checking the key…';
    status.className = 'notice';
    try {
      await signIn(key);
      input.value = '';
      signedIn();
    } catch (err) {
      status.className = 'notice error';
      if (err instanceof ApiError && err.status === 401) {
        status.textContent = 'This key was refused: it is unknown, malformed or revoked.';
      } else {
        status.textContent = err.message;
      }
    } finally {
      button.disabled = false;
    }
  });
  fill(main, form);
  input.focus();
}
