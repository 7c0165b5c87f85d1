import { expect, test, type Page } from '@playwright/test';
import { startSale, stopAll } from './stack';

const shots = 'e2e/screenshots';

test.afterAll(stopAll);

async function signIn(page: Page, name: string) {
  await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByText(`Signed in as ${name}`)).toBeVisible();
}

test('behind sign-in: sign in, buy, see the order; another buyer cannot see it', async ({ page }) => {
  await startSale({ stock: 3, startsIn: -60, endsIn: 3600, buyerAuth: 'jwt' });
  await page.goto('/');
  await expect(page.getByText('3 of 3 left')).toBeVisible();
  // Signed out: no user id field and nothing to buy with.
  await expect(page.getByLabel('Your user id')).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Buy now' })).toHaveCount(0);
  await page.screenshot({ path: `${shots}/sign-in.png` });

  await signIn(page, 'alice');
  await page.getByRole('button', { name: 'Buy now' }).click();
  const result = page.getByRole('status');
  await expect(result).toHaveText(/Purchase confirmed! Your order id is [0-9a-f-]{36}\./);
  const orderId = (await result.textContent())?.match(/[0-9a-f-]{36}/)?.[0] ?? '';
  await expect(page.getByText(`Your order: ${orderId}`)).toBeVisible();
  await expect(page.getByText('2 of 3 left')).toBeVisible();
  await page.screenshot({ path: `${shots}/signed-in-bought.png` });

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('button', { name: 'Sign in' })).toBeVisible();
  await expect(page.getByText(orderId)).toHaveCount(0);

  await signIn(page, 'bob');
  await expect(page.getByText('Your order:')).toHaveCount(0);
  // Bob asking for alice's purchase with his own token is refused.
  const snoop = await page.evaluate(async () => {
    const session = JSON.parse(sessionStorage.getItem('flash-sale-session') ?? '{}') as { token?: string };
    const res = await fetch('/api/purchases/alice', { headers: { Authorization: `Bearer ${session.token}` } });
    return { status: res.status, body: await res.text() };
  });
  expect(snoop.status).toBe(403);
  expect(snoop.body).not.toContain(orderId);

  // Reloading keeps bob signed in (this tab's session), still without alice's order.
  await page.reload();
  await expect(page.getByText('Signed in as bob')).toBeVisible();
  await expect(page.getByText(orderId)).toHaveCount(0);
});
