import { useId, useState, type FormEvent } from 'react';
import type { MyPurchase, Session } from '../api/types';
import { userIdProblem } from '../lib/userId';

interface SignInProps {
  error: string | null;
  onSignIn: (name: string) => void;
}

/** Sign-in at the shop's identity provider (the development one takes any name). */
export function SignIn({ error, onSignIn }: SignInProps) {
  const [name, setName] = useState('');
  const inputId = useId();
  const problem = userIdProblem(name);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (problem === null) onSignIn(name);
  };
  return (
    <form className="purchase" onSubmit={submit} noValidate>
      <label htmlFor={inputId}>Your name</label>
      <input
        id={inputId}
        name="name"
        value={name}
        autoComplete="username"
        placeholder="e.g. alice"
        onChange={(e) => setName(e.target.value)}
      />
      {error && <p className="hint hint--error">{error}</p>}
      <button type="submit" disabled={problem !== null}>
        Sign in
      </button>
    </form>
  );
}

interface AccountProps {
  session: Session;
  mine: MyPurchase | null;
  onSignOut: () => void;
}

/** Who is signed in, their order if they have one, and signing out. */
export function Account({ session, mine, onSignOut }: AccountProps) {
  return (
    <div className="account">
      <p>
        Signed in as <strong>{session.sub}</strong>
      </p>
      {mine?.purchased && mine.orderId && <p className="account__order">Your order: {mine.orderId}</p>}
      <button type="button" className="account__signout" onClick={onSignOut}>
        Sign out
      </button>
    </div>
  );
}
