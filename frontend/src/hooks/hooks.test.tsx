import { act, renderHook, waitFor } from '@testing-library/react';
import { usePurchase } from './usePurchase';
import { POLL_MS, useSaleStatus } from './useSaleStatus';
import { CONFIG_RETRY_MS, useConfig, useSession } from './useSession';

const status = (stockRemaining: number) => ({
  status: 'active',
  startsAt: '2026-03-01T10:00:00.000Z',
  endsAt: '2026-03-01T11:00:00.000Z',
  stockRemaining,
  totalStock: 10,
});

/** A stand-in EventSource the test drives. */
class FakeEventSource {
  static last: FakeEventSource | undefined;
  listeners: Record<string, ((e: MessageEvent<string>) => void)[]> = {};
  onerror: (() => void) | null = null;
  closed = false;
  constructor(public url: string) {
    FakeEventSource.last = this;
  }
  addEventListener(type: string, fn: (e: MessageEvent<string>) => void) {
    (this.listeners[type] ??= []).push(fn);
  }
  emit(type: string, data: unknown) {
    for (const fn of this.listeners[type] ?? []) fn({ data: JSON.stringify(data) } as MessageEvent<string>);
  }
  close() {
    this.closed = true;
  }
}

describe('useSaleStatus', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it('shows what the stream sends and falls back to polling when it drops', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const fetch = vi.fn().mockImplementation(async () => new Response(JSON.stringify(status(7))));
    vi.stubGlobal('fetch', fetch);
    vi.stubGlobal('EventSource', FakeEventSource);
    const { result, unmount } = renderHook(() => useSaleStatus());
    const source = FakeEventSource.last!;
    expect(source.url).toBe('/api/sale/events');

    act(() => source.emit('status', status(9)));
    expect(result.current).toEqual({ status: status(9), live: true });

    act(() => source.onerror?.());
    expect(result.current.live).toBe(false);
    const calls = fetch.mock.calls.length;
    await act(async () => {
      await vi.advanceTimersByTimeAsync(POLL_MS * 2 + 10);
    });
    expect(fetch.mock.calls.length).toBeGreaterThanOrEqual(calls + 2);
    await waitFor(() => expect(result.current.status?.stockRemaining).toBe(7));

    unmount();
    expect(source.closed).toBe(true);
  });
});

describe('usePurchase', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('sends one purchase however often buy is pressed while it is in flight', async () => {
    let answer: (r: Response) => void = () => undefined;
    const fetch = vi.fn().mockImplementation(() => new Promise<Response>((resolve) => (answer = resolve)));
    vi.stubGlobal('fetch', fetch);
    const { result } = renderHook(() => usePurchase());

    act(() => {
      void result.current.buy('u1');
      void result.current.buy('u1');
    });
    expect(result.current.pending).toBe(true);
    await act(async () => {
      answer(new Response(JSON.stringify({ orderId: 'o1' }), { status: 201 }));
    });

    await waitFor(() => expect(result.current.pending).toBe(false));
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(result.current.outcome).toEqual({ kind: 'confirmed', orderId: 'o1' });
  });

  it('does not show an answer that arrives after a sign-out', async () => {
    let answer: (r: Response) => void = () => undefined;
    vi.stubGlobal('fetch', vi.fn().mockImplementation(() => new Promise<Response>((resolve) => (answer = resolve))));
    const { result } = renderHook(() => usePurchase());

    act(() => {
      void result.current.buy(null, 'alice-token');
    });
    act(() => result.current.reset());
    await act(async () => {
      answer(new Response(JSON.stringify({ orderId: 'alices-order' }), { status: 201 }));
    });

    await waitFor(() => expect(result.current.pending).toBe(false));
    expect(result.current.outcome).toBeNull();
  });
});

describe('useConfig', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.useRealTimers();
  });

  it('asks again while the api cannot answer instead of guessing the open mode', async () => {
    vi.useFakeTimers();
    const fetch = vi
      .fn()
      .mockResolvedValueOnce(new Response('', { status: 503 }))
      .mockResolvedValueOnce(new Response(JSON.stringify({ buyerAuth: 'jwt' }), { status: 200 }));
    vi.stubGlobal('fetch', fetch);
    const { result } = renderHook(() => useConfig());

    await act(async () => {
      await vi.advanceTimersByTimeAsync(10);
    });
    expect(result.current).toBeNull();
    await act(async () => {
      await vi.advanceTimersByTimeAsync(CONFIG_RETRY_MS);
    });
    expect(result.current).toEqual({ buyerAuth: 'jwt' });
  });
});

describe('useSession', () => {
  afterEach(() => {
    vi.useRealTimers();
    sessionStorage.clear();
  });

  it('signs the buyer out when the token expires', async () => {
    vi.useFakeTimers();
    const expiresAt = Math.floor(Date.now() / 1000) + 60;
    sessionStorage.setItem('flash-sale-session', JSON.stringify({ token: 't', sub: 'alice', expiresAt }));
    const { result } = renderHook(() => useSession('http://idp'));
    expect(result.current.session?.sub).toBe('alice');

    await act(async () => {
      await vi.advanceTimersByTimeAsync(61_000);
    });
    expect(result.current.session).toBeNull();
  });
});
