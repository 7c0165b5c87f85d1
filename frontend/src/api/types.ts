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
  | { kind: 'signed-out'; message: string }
  | { kind: 'forbidden'; message: string }
  | { kind: 'busy' }
  | { kind: 'network-error' };

/** GET /api/config */
export interface ClientConfig {
  buyerAuth: 'none' | 'jwt';
  /** Where a buyer signs in (`jwt` mode), when the operator said. */
  signInUrl?: string;
}

/** A signed-in buyer: the identity provider's token and its subject. */
export interface Session {
  token: string;
  sub: string;
  /** Seconds since the Unix epoch. */
  expiresAt: number;
}

/** GET /api/purchases/me */
export interface MyPurchase {
  purchased: boolean;
  userId: string;
  orderId?: string;
  purchasedAt?: string;
}
