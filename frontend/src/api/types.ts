/** The api's JSON, as documented at /api/openapi.json. */

export type Phase = 'upcoming' | 'active' | 'ended';

export interface SaleStatus {
  status: Phase;
  startsAt: string;
  endsAt: string;
  stockRemaining: number;
  totalStock: number;
}

export interface ErrorBody {
  statusCode: number;
  message: string | string[];
  error: string;
  timestamp: string;
  path: string;
  orderId?: string;
  purchasedAt?: string;
  retryAfterMs?: number;
}

/** Every way a purchase can end, each with what the shopper needs to know. */
export type PurchaseOutcome =
  | { kind: 'confirmed'; orderId: string }
  | { kind: 'already-purchased'; orderId?: string }
  | { kind: 'sold-out' }
  | { kind: 'not-active'; message: string }
  | { kind: 'invalid'; problems: string[] }
  | { kind: 'too-many-attempts'; message: string }
  | { kind: 'busy' }
  | { kind: 'network-error' };
