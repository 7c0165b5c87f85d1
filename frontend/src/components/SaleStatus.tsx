import type { SaleStatus as Status } from '../api/types';
import { countdown } from '../lib/time';

interface Props {
  status: Status | null;
  now: number;
}

/** The sale at a glance: countdown, stock left, sold out or ended. */
export function SaleStatus({ status, now }: Props) {
  if (!status) {
    return <p className="status status--loading">Loading the sale…</p>;
  }
  if (status.status === 'upcoming') {
    return (
      <div className="status status--upcoming">
        <p className="status__title">The sale starts in</p>
        <p className="status__countdown" role="timer" aria-label="Time until the sale starts">
          {countdown(Date.parse(status.startsAt), now)}
        </p>
        <p className="status__detail">
          {status.totalStock === 1 ? 'One item' : `${status.totalStock} items`} will be available.
        </p>
      </div>
    );
  }
  if (status.status === 'ended') {
    return (
      <div className="status status--ended">
        <p className="status__title">Sale ended</p>
        <p className="status__detail">Thanks for stopping by.</p>
      </div>
    );
  }
  if (status.stockRemaining === 0) {
    return (
      <div className="status status--soldout">
        <p className="status__title">Sold out</p>
        <p className="status__detail">
          {status.totalStock === 1 ? 'The only item is gone.' : `All ${status.totalStock} items are gone.`}
        </p>
      </div>
    );
  }
  const sold = status.totalStock - status.stockRemaining;
  return (
    <div className="status status--active">
      <p className="status__title">The sale is live</p>
      <p className="status__stock">
        <strong>{status.stockRemaining}</strong> of {status.totalStock} left
      </p>
      <div
        className="progress"
        role="progressbar"
        aria-label="Items sold"
        aria-valuemin={0}
        aria-valuemax={status.totalStock}
        aria-valuenow={sold}
      >
        <div className="progress__bar" style={{ width: `${(sold / status.totalStock) * 100}%` }} />
      </div>
      <p className="status__detail">Ends in {countdown(Date.parse(status.endsAt), now)}</p>
    </div>
  );
}
