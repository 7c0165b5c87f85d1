import type { ErrorBody, PurchaseOutcome, SaleStatus } from './types';

const BASE = '/api';

export class ApiError extends Error {
  constructor(public readonly status: number, message: string) {
    super(message);
  }
}

/** GET /api/sale/status */
export async function getSaleStatus(signal?: AbortSignal): Promise<SaleStatus> {
  const res = await fetch(`${BASE}/sale/status`, { signal });
  if (!res.ok) throw new ApiError(res.status, res.statusText);
  return (await res.json()) as SaleStatus;
}

/** The URL of the live status stream (server-sent `status` events). */
export const SALE_EVENTS_URL = `${BASE}/sale/events`;

/** POST /api/purchases, mapped to an outcome; never throws. */
export async function purchase(userId: string): Promise<PurchaseOutcome> {
  let res: Response;
  try {
    res = await fetch(`${BASE}/purchases`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ userId }),
    });
  } catch {
    return { kind: 'network-error' };
  }
  const body = (await res.json().catch(() => null)) as
    | (Partial<ErrorBody> & { orderId?: string })
    | null;
  return toOutcome(res.status, body);
}

export function toOutcome(
  status: number,
  body: (Partial<ErrorBody> & { orderId?: string }) | null,
): PurchaseOutcome {
  const message = Array.isArray(body?.message) ? body.message.join('; ') : (body?.message ?? '');
  switch (status) {
    case 201:
      return body?.orderId ? { kind: 'confirmed', orderId: body.orderId } : { kind: 'busy' };
    case 409:
      return { kind: 'already-purchased', orderId: body?.orderId };
    case 410:
      return { kind: 'sold-out' };
    case 400:
      return Array.isArray(body?.message)
        ? { kind: 'invalid', problems: body.message }
        : { kind: 'not-active', message };
    case 429:
      return { kind: 'too-many-attempts', message };
    default:
      return { kind: 'busy' };
  }
}
