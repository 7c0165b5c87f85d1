import type { ClientConfig, ErrorBody, MyPurchase, PurchaseOutcome, SaleStatus, Session } from './types';

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

/**
 * GET /api/config: how the api knows the buyer. An api without it (the
 * seed's) is the open contract.
 */
export async function getConfig(signal?: AbortSignal): Promise<ClientConfig> {
  const res = await fetch(`${BASE}/config`, { signal });
  if (res.status === 404) return { buyerAuth: 'none' };
  if (!res.ok) throw new ApiError(res.status, res.statusText);
  return (await res.json()) as ClientConfig;
}

/** Signs in at the identity provider (`signInUrl`, from the config). */
export async function signIn(signInUrl: string, name: string): Promise<Session> {
  const res = await fetch(`${signInUrl.replace(/\/$/, '')}/sign-in`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  const body = (await res.json().catch(() => null)) as
    | { token?: string; sub?: string; expiresAt?: number; message?: string }
    | null;
  if (!res.ok || !body?.token || !body.sub || !body.expiresAt) {
    throw new ApiError(res.status, body?.message ?? 'Sign-in failed.');
  }
  return { token: body.token, sub: body.sub, expiresAt: body.expiresAt };
}

function authorization(token?: string): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** GET /api/purchases/me: the signed-in buyer's purchase. */
export async function myPurchase(token: string): Promise<MyPurchase> {
  const res = await fetch(`${BASE}/purchases/me`, { headers: authorization(token) });
  if (!res.ok) throw new ApiError(res.status, res.statusText);
  return (await res.json()) as MyPurchase;
}

/**
 * POST /api/purchases, mapped to an outcome; never throws. Signed in, the
 * token names the buyer and the body names nobody.
 */
export async function purchase(userId: string | null, token?: string): Promise<PurchaseOutcome> {
  let res: Response;
  try {
    res = await fetch(`${BASE}/purchases`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...authorization(token) },
      body: JSON.stringify(userId === null ? {} : { userId }),
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
    case 401:
      return { kind: 'signed-out', message };
    case 403:
      return { kind: 'forbidden', message };
    default:
      return { kind: 'busy' };
  }
}
