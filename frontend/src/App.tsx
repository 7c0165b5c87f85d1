import { PurchaseForm } from './components/PurchaseForm';
import { PurchaseResult } from './components/PurchaseResult';
import { SaleStatus } from './components/SaleStatus';
import { useNow } from './hooks/useNow';
import { usePurchase } from './hooks/usePurchase';
import { useSaleStatus } from './hooks/useSaleStatus';

export function App() {
  const { status, live } = useSaleStatus();
  const { buy, pending, outcome } = usePurchase();
  const now = useNow();
  const open = status?.status === 'active' && status.stockRemaining > 0;

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
        <PurchaseForm open={open} pending={pending} onBuy={buy} />
        <PurchaseResult outcome={outcome} />
      </section>
    </main>
  );
}
