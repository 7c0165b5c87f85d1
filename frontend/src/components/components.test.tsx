import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import type { SaleStatus as Status } from '../api/types';
import { PurchaseForm } from './PurchaseForm';
import { PurchaseResult } from './PurchaseResult';
import { SaleStatus } from './SaleStatus';

const base: Status = {
  status: 'active',
  startsAt: '2026-03-01T10:00:00.000Z',
  endsAt: '2026-03-01T11:00:00.000Z',
  stockRemaining: 4,
  totalStock: 10,
};
const at = (iso: string) => Date.parse(iso);

describe('SaleStatus', () => {
  it('counts down to the start of an upcoming sale', () => {
    render(<SaleStatus status={{ ...base, status: 'upcoming' }} now={at('2026-03-01T09:58:30.000Z')} />);
    expect(screen.getByRole('timer')).toHaveTextContent('01:30');
  });

  it('shows the stock left with a progress bar while active', () => {
    render(<SaleStatus status={base} now={at('2026-03-01T10:10:00.000Z')} />);
    expect(screen.getByText(/of 10 left/)).toHaveTextContent('4 of 10 left');
    const bar = screen.getByRole('progressbar', { name: 'Items sold' });
    expect(bar).toHaveAttribute('aria-valuenow', '6');
  });

  it('says sold out when no stock is left, and ended after the window', () => {
    const { rerender } = render(<SaleStatus status={{ ...base, stockRemaining: 0 }} now={0} />);
    expect(screen.getByText('Sold out')).toBeInTheDocument();
    expect(screen.getByText('All 10 items are gone.')).toBeInTheDocument();
    rerender(<SaleStatus status={{ ...base, status: 'ended' }} now={0} />);
    expect(screen.getByText('Sale ended')).toBeInTheDocument();
  });
});

describe('PurchaseForm', () => {
  it('is disabled unless the sale is open', async () => {
    render(<PurchaseForm open={false} pending={false} onBuy={vi.fn()} />);
    await userEvent.type(screen.getByLabelText('Your user id'), 'user-1');
    expect(screen.getByRole('button', { name: 'Buy now' })).toBeDisabled();
  });

  it('checks the user id before sending and explains the rule', async () => {
    const onBuy = vi.fn();
    render(<PurchaseForm open pending={false} onBuy={onBuy} />);
    const input = screen.getByLabelText('Your user id');
    await userEvent.type(input, '   ');
    await userEvent.tab();
    expect(screen.getByRole('button', { name: 'Buy now' })).toBeDisabled();
    expect(input).toHaveAttribute('aria-invalid', 'true');
    expect(screen.getByText(/enter your user id/i)).toBeInTheDocument();
    expect(onBuy).not.toHaveBeenCalled();
  });

  it('buys with the keyboard alone and is disabled while in flight', async () => {
    const onBuy = vi.fn();
    const { rerender } = render(<PurchaseForm open pending={false} onBuy={onBuy} />);
    await userEvent.type(screen.getByLabelText('Your user id'), 'user-42{Enter}');
    expect(onBuy).toHaveBeenCalledWith('user-42');
    rerender(<PurchaseForm open pending onBuy={onBuy} />);
    expect(screen.getByRole('button', { name: 'Buying…' })).toBeDisabled();
  });
});

describe('PurchaseResult', () => {
  it('announces each outcome in plain words', () => {
    const { rerender } = render(<PurchaseResult outcome={{ kind: 'confirmed', orderId: 'o-1' }} />);
    const region = screen.getByRole('status');
    expect(region).toHaveAttribute('aria-live', 'polite');
    expect(region).toHaveTextContent('Purchase confirmed! Your order id is o-1.');
    rerender(<PurchaseResult outcome={{ kind: 'already-purchased', orderId: 'o-1' }} />);
    expect(region).toHaveTextContent('You have already purchased this item. Your order id is o-1.');
    rerender(<PurchaseResult outcome={{ kind: 'sold-out' }} />);
    expect(region).toHaveTextContent('Sorry, the item is sold out.');
    rerender(<PurchaseResult outcome={{ kind: 'busy' }} />);
    expect(region).toHaveTextContent(/busy/);
    rerender(<PurchaseResult outcome={{ kind: 'too-many-attempts', message: 'Too many purchase attempts. Maximum 3 attempts allowed.' }} />);
    expect(region).toHaveTextContent('Maximum 3 attempts');
  });
});
