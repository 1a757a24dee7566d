import { useState } from 'preact/hooks';
import { useApp } from '../app.js';
import { FormAlert, TextField } from '../components/Field.js';
import { Link } from '../components/Link.js';
import { fieldId, useFormState } from '../form.js';

const FIELDS = ['email', 'password'] as const;

export function LogIn() {
  const { api, setSession, navigate } = useApp();
  const form = useFormState('login', FIELDS);
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  return (
    <section class="auth" aria-labelledby="login-title">
      <h1 id="login-title">Log in</h1>
      <p class="lead">Owners manage their contracts and devices here; operators open the fleet console.</p>
      <form
        class="card"
        noValidate
        onSubmit={(event) => {
          event.preventDefault();
          void form.submit(async () => {
            const session = await api.logIn({ email, password });
            setSession(session);
            navigate(session.account.kind === 'operator' ? '/console' : '/contracts', { replace: true });
          });
        }}
      >
        <FormAlert error={form.error} />
        <TextField
          id={fieldId('login', 'email')}
          label="E-mail address"
          type="email"
          autoComplete="username"
          required
          value={email}
          onInput={(e) => setEmail(e.currentTarget.value)}
          error={form.fieldErrors.email}
        />
        <TextField
          id={fieldId('login', 'password')}
          label="Password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
          error={form.fieldErrors.password}
        />
        <button type="submit" class="button button--primary" disabled={form.busy}>
          {form.busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
      <p class="switch">
        New here? <Link href="/signup">Create an owner account</Link>
      </p>
    </section>
  );
}
