import { useEffect, useState } from 'react';
import { getSaleStatus, SALE_EVENTS_URL } from '../api/client';
import type { SaleStatus } from '../api/types';

/** How often the page polls while the live stream is down. */
export const POLL_MS = 3000;

export interface SaleStatusState {
  status: SaleStatus | null;
  /** True while the live stream delivers; false while polling instead. */
  live: boolean;
}

/**
 * The sale's status, live: server-sent events from /api/sale/events, with a
 * fallback to polling /api/sale/status every 3 s whenever the stream is down
 * (the browser keeps trying to reconnect it meanwhile).
 */
export function useSaleStatus(): SaleStatusState {
  const [status, setStatus] = useState<SaleStatus | null>(null);
  const [live, setLive] = useState(false);

  useEffect(() => {
    let closed = false;
    let poller: ReturnType<typeof setInterval> | undefined;
    const controller = new AbortController();

    const poll = () =>
      getSaleStatus(controller.signal)
        .then((s) => !closed && setStatus(s))
        .catch(() => undefined);
    const startPolling = () => {
      if (poller === undefined) poller = setInterval(poll, POLL_MS);
    };
    const stopPolling = () => {
      if (poller !== undefined) clearInterval(poller);
      poller = undefined;
    };

    poll();
    let source: EventSource | undefined;
    if (typeof EventSource === 'undefined') {
      startPolling();
    } else {
      source = new EventSource(SALE_EVENTS_URL);
      source.addEventListener('status', (event) => {
        if (closed) return;
        setStatus(JSON.parse((event as MessageEvent<string>).data) as SaleStatus);
        setLive(true);
        stopPolling();
      });
      source.onerror = () => {
        if (closed) return;
        setLive(false);
        startPolling();
      };
    }
    return () => {
      closed = true;
      controller.abort();
      stopPolling();
      source?.close();
    };
  }, []);

  return { status, live };
}
