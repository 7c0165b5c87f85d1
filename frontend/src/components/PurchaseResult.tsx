import type { PurchaseOutcome } from '../api/types';

/** Each outcome in plain words. */
export function describe(outcome: PurchaseOutcome): { tone: 'good' | 'bad' | 'info'; text: string } {
  switch (outcome.kind) {
    case 'confirmed':
      return { tone: 'good', text: `Purchase confirmed! Your order id is ${outcome.orderId}.` };
    case 'already-purchased':
      return {
        tone: 'info',
        text: outcome.orderId
          ? `You have already purchased this item. Your order id is ${outcome.orderId}.`
          : 'You have already purchased this item.',
      };
    case 'sold-out':
      return { tone: 'bad', text: 'Sorry, the item is sold out.' };
    case 'not-active':
      return { tone: 'info', text: outcome.message || 'The sale is not active.' };
    case 'invalid':
      return { tone: 'bad', text: `Please check your user id: ${outcome.problems.join('; ')}.` };
    case 'too-many-attempts':
      return { tone: 'bad', text: outcome.message || 'Too many attempts. Please wait.' };
    case 'signed-out':
      return { tone: 'bad', text: `Please sign in again. ${outcome.message}`.trim() };
    case 'forbidden':
      return { tone: 'bad', text: outcome.message || 'That is not yours.' };
    case 'busy':
      return { tone: 'info', text: 'The shop is very busy right now. Please try again in a moment.' };
    case 'network-error':
      return { tone: 'bad', text: 'Could not reach the shop. Check your connection and try again.' };
  }
}

/** Announced to screen readers as it changes. */
export function PurchaseResult({ outcome }: { outcome: PurchaseOutcome | null }) {
  const message = outcome ? describe(outcome) : null;
  return (
    <div className="result-region" role="status" aria-live="polite">
      {message && <p className={`result result--${message.tone}`}>{message.text}</p>}
    </div>
  );
}
