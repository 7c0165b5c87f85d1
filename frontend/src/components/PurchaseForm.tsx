import { useId, useState, type FormEvent } from 'react';
import { userIdProblem } from '../lib/userId';

interface Props {
  /** The sale is active and has stock. */
  open: boolean;
  pending: boolean;
  /** Signed in (`BUYER_AUTH=jwt`): the token names the buyer, no field. */
  signedIn?: boolean;
  onBuy: (userId: string | null) => void;
}

/** The user id and the Buy button; nothing is sent that the api would refuse. */
export function PurchaseForm({ open, pending, signedIn = false, onBuy }: Props) {
  const [userId, setUserId] = useState('');
  const [touched, setTouched] = useState(false);
  const inputId = useId();
  const hintId = useId();
  const problem = signedIn ? null : userIdProblem(userId);
  const canBuy = open && !pending && problem === null;

  const submit = (event: FormEvent) => {
    event.preventDefault();
    setTouched(true);
    if (canBuy) onBuy(signedIn ? null : userId);
  };

  if (signedIn) {
    return (
      <form className="purchase" onSubmit={submit} noValidate>
        <button type="submit" disabled={!canBuy}>
          {pending ? 'Buying…' : 'Buy now'}
        </button>
      </form>
    );
  }

  return (
    <form className="purchase" onSubmit={submit} noValidate>
      <label htmlFor={inputId}>Your user id</label>
      <input
        id={inputId}
        name="userId"
        value={userId}
        autoComplete="username"
        placeholder="e.g. user-42"
        maxLength={600}
        aria-invalid={touched && problem !== null}
        aria-describedby={hintId}
        onChange={(e) => setUserId(e.target.value)}
        onBlur={() => setTouched(true)}
      />
      <p id={hintId} className={touched && problem ? 'hint hint--error' : 'hint'}>
        {touched && problem ? problem : 'Up to 255 characters: any name, e-mail or id.'}
      </p>
      <button type="submit" disabled={!canBuy}>
        {pending ? 'Buying…' : 'Buy now'}
      </button>
    </form>
  );
}
