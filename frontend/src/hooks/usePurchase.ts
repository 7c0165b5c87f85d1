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
  // Bumped by `reset`: an answer that arrives after it belongs to a buyer
  // who signed out, and is not shown to the next one.
  const generation = useRef(0);

  const buy = useCallback(async (userId: string | null, token?: string) => {
    if (inFlight.current) return;
    inFlight.current = true;
    const mine = generation.current;
    setPending(true);
    setOutcome(null);
    try {
      const outcome = await purchase(userId, token);
      if (generation.current === mine) setOutcome(outcome);
    } finally {
      inFlight.current = false;
      setPending(false);
    }
  }, []);

  const reset = useCallback(() => {
    generation.current += 1;
    setOutcome(null);
  }, []);

  return { buy, pending, outcome, reset };
}
