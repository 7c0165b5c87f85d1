import { useCallback, useRef, useState } from 'react';
import { purchase } from '../api/client';
import type { PurchaseOutcome } from '../api/types';

/**
 * One purchase at a time: a second `buy` while one is in flight is ignored.
 * `userId` is null when signed in (the token names the buyer).
 */
export function usePurchase() {
  const [pending, setPending] = useState(false);
  const [outcome, setOutcome] = useState<PurchaseOutcome | null>(null);
  const inFlight = useRef(false);

  const buy = useCallback(async (userId: string | null, token?: string) => {
    if (inFlight.current) return;
    inFlight.current = true;
    setPending(true);
    setOutcome(null);
    try {
      setOutcome(await purchase(userId, token));
    } finally {
      inFlight.current = false;
      setPending(false);
    }
  }, []);

  const reset = useCallback(() => setOutcome(null), []);

  return { buy, pending, outcome, reset };
}
