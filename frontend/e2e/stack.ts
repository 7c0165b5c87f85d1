/**
 * The real backend for the browser tests: one order worker for the whole
 * run, and an api restarted for each test with the sale that test needs
 * (its own SALE_ID, so tests never share stock).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { API_PORT } from '../playwright.config';

const targetDir = process.env.CARGO_TARGET_DIR ?? '../target';
const apiBin = process.env.API_BIN ?? `${targetDir}/debug/api`;
const workerBin = process.env.WORKER_BIN ?? `${targetDir}/debug/order-worker`;
const idpBin = process.env.IDP_BIN ?? `${targetDir}/debug/dev-idp`;

/** The development identity provider of the sign-in tests. */
export const IDP_PORT = Number(process.env.E2E_IDP_PORT ?? 4174);
const IDP_URL = `http://127.0.0.1:${IDP_PORT}`;

const redisUrl =
  process.env.REDIS_URL ?? `redis://${process.env.REDIS_HOST ?? '127.0.0.1'}:${process.env.REDIS_PORT ?? '6379'}`;
const databaseUrl =
  process.env.DATABASE_URL ?? 'postgresql://flash_sale_user:flash_sale_password@localhost:5432/flash_sale_db';

let api: ChildProcess | undefined;
let worker: ChildProcess | undefined;
let idp: ChildProcess | undefined;

function common(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    REDIS_URL: redisUrl,
    DATABASE_URL: databaseUrl,
    DATABASE_POOL_MIN: '0',
    ORDER_QUEUE: 'e2e:orders',
    RUST_LOG: 'warn',
  };
}

async function until(check: () => Promise<boolean>, what: string, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not come up`);
}

export interface SaleSpec {
  stock: number;
  /** Seconds from now; negative for the past. */
  startsIn: number;
  endsIn: number;
  /** `jwt`: behind the development identity provider's sign-in. */
  buyerAuth?: 'none' | 'jwt';
}

async function startIdp() {
  if (idp) return;
  idp = spawn(idpBin, [], {
    env: { PATH: process.env.PATH, DEV_IDP_PORT: String(IDP_PORT), DEV_IDP_ISSUER: IDP_URL },
    stdio: 'inherit',
  });
  await until(async () => (await fetch(`${IDP_URL}/.well-known/jwks.json`)).ok, 'the identity provider');
}

function authEnv(spec: SaleSpec): NodeJS.ProcessEnv {
  if (spec.buyerAuth !== 'jwt') return {};
  return {
    BUYER_AUTH: 'jwt',
    JWT_JWKS_URL: `${IDP_URL}/.well-known/jwks.json`,
    JWT_ISSUER: IDP_URL,
    JWT_AUDIENCE: 'flash-sale',
    BUYER_SIGN_IN_URL: IDP_URL,
  };
}

/** (Re)starts the api on API_PORT selling a fresh sale; returns its id. */
export async function startSale(spec: SaleSpec): Promise<string> {
  await stopApi();
  if (spec.buyerAuth === 'jwt') await startIdp();
  if (!worker) {
    worker = spawn(workerBin, [], {
      env: { ...common(), METRICS_PORT: '0', RECONCILE_SALES: 'e2e-*' },
      stdio: 'inherit',
    });
  }
  const saleId = `e2e-${randomUUID().slice(0, 8)}`;
  const at = (s: number) => new Date(Date.now() + s * 1000).toISOString();
  api = spawn(apiBin, [], {
    env: {
      ...common(),
      SALE_ID: saleId,
      SALE_START_TIME: at(spec.startsIn),
      SALE_END_TIME: at(spec.endsIn),
      STOCK_QUANTITY: String(spec.stock),
      PORT: String(API_PORT),
      HOST: '127.0.0.1',
      IP_RATE_LIMIT_PER_SECOND: '0',
      IP_RATE_LIMIT_PER_10_SECONDS: '0',
      ...authEnv(spec),
    },
    stdio: 'inherit',
  });
  await until(async () => (await fetch(`http://127.0.0.1:${API_PORT}/api/health`)).ok, 'the api');
  return saleId;
}

async function stopApi() {
  if (!api) return;
  const exited = new Promise((r) => api?.once('exit', r));
  api.kill('SIGTERM');
  await exited;
  api = undefined;
}

export async function stopAll() {
  await stopApi();
  worker?.kill('SIGTERM');
  worker = undefined;
  idp?.kill('SIGTERM');
  idp = undefined;
}
