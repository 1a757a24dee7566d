import { useState } from 'preact/hooks';
import { useApp } from '../app.js';
import { FormAlert, TextField } from '../components/Field.js';
import { Link } from '../components/Link.js';
import { fieldId, useFormState } from '../form.js';

const FIELDS = ['name', 'email', 'password'] as const;

export function SignUp() {
  const { api, setSession, navigate } = useApp();
  const form = useFormState('signup', FIELDS, { SIMCRED_ACCOUNT_EXISTS: 'email' });
  const [name, setName] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  return (
    <section class="auth" aria-labelledby="signup-title">
      <h1 id="signup-title">Create an owner account</h1>
      <p class="lead">
        Sign contracts for your devices, add them one by one or by file, and watch each one come onto the
        network.
      </p>
      <form
        class="card"
        noValidate
        onSubmit={(event) => {
          event.preventDefault();
          void form.submit(async () => {
            setSession(await api.signUp({ name, email, password }));
            navigate('/contracts/new', { replace: true });
          });
        }}
      >
        <FormAlert error={form.error} />
        <TextField
          id={fieldId('signup', 'name')}
          label="Your name or company"
          autoComplete="organization"
          required
          value={name}
          onInput={(e) => setName(e.currentTarget.value)}
          error={form.fieldErrors.name}
        />
        <TextField
          id={fieldId('signup', 'email')}
          label="E-mail address"
          type="email"
          autoComplete="email"
          required
          value={email}
          onInput={(e) => setEmail(e.currentTarget.value)}
          error={form.fieldErrors.email}
        />
        <TextField
          id={fieldId('signup', 'password')}
          label="Password"
          hint="At least 12 characters. A few unrelated words make a good one."
          type="password"
          autoComplete="new-password"
          required
          minLength={12}
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
          error={form.fieldErrors.password}
        />
        <button type="submit" class="button button--primary" disabled={form.busy}>
          {form.busy ? 'Creating your account…' : 'Create account'}
        </button>
      </form>
      <p class="switch">
        Already have an account? <Link href="/login">Log in</Link>
      </p>
    </section>
  );
}
