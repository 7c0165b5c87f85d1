import { useEffect, useState } from 'react';
import { myPurchase } from './api/client';
import type { MyPurchase } from './api/types';
import { Account, SignIn } from './components/Account';
import { PurchaseForm } from './components/PurchaseForm';
import { PurchaseResult } from './components/PurchaseResult';
import { SaleStatus } from './components/SaleStatus';
import { useNow } from './hooks/useNow';
import { usePurchase } from './hooks/usePurchase';
import { useSaleStatus } from './hooks/useSaleStatus';
import { useConfig, useSession } from './hooks/useSession';

export function App() {
  const { status, live } = useSaleStatus();
  const { buy, pending, outcome, reset } = usePurchase();
  const config = useConfig();
  const { session, error, signIn, signOut } = useSession(config?.signInUrl);
  const [mine, setMine] = useState<MyPurchase | null>(null);
  const now = useNow();
  const open = status?.status === 'active' && status.stockRemaining > 0;
  const jwt = config?.buyerAuth === 'jwt';

  // A token the api refuses (expired, keys rotated away) signs the buyer
  // out, so the shop offers "Sign in" again instead of failing every buy.
  useEffect(() => {
    if (outcome?.kind === 'signed-out' && session) signOut();
  }, [outcome, session, signOut]);

  // The signed-in buyer's order, on sign-in and after each purchase.
  useEffect(() => {
    setMine(null);
    if (!jwt || !session) return;
    let current = true;
    myPurchase(session.token)
      .then((m) => current && setMine(m))
      .catch(() => undefined);
    return () => {
      current = false;
    };
  }, [jwt, session, outcome]);

  return (
    <main className="shop">
      <header>
        <p className="shop__kicker">⚡ Flash sale</p>
        <h1>Limited Edition Sneaker</h1>
        <p className="shop__live" aria-hidden="true">
          {live ? '● live' : '○ updating every 3 s'}
        </p>
      </header>
      <section aria-label="Sale status">
        <SaleStatus status={status} now={now} />
      </section>
      <section aria-label="Buy">
        {jwt && !session && <SignIn error={error} onSignIn={signIn} />}
        {jwt && session && (
          <Account
            session={session}
            mine={mine}
            onSignOut={() => {
              reset();
              signOut();
            }}
          />
        )}
        {(!jwt || session) && config && (
          <PurchaseForm
            open={open}
            pending={pending}
            signedIn={jwt}
            onBuy={(userId) => buy(userId, session?.token)}
          />
        )}
        <PurchaseResult outcome={outcome} />
      </section>
    </main>
  );
}
