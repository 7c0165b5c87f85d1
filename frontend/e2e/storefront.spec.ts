import { expect, test, type Page } from '@playwright/test';
import { startSale, stopAll } from './stack';

const shots = 'e2e/screenshots';

test.afterAll(stopAll);

async function buy(page: Page, userId: string) {
  const input = page.getByLabel('Your user id');
  await input.fill(userId);
  await page.getByRole('button', { name: 'Buy now' }).click();
}

test('upcoming: a countdown, the button disabled, then the sale opens by itself', async ({ page }) => {
  await startSale({ stock: 3, startsIn: 5, endsIn: 3600 });
  await page.goto('/');

  await expect(page.getByText('The sale starts in')).toBeVisible();
  await expect(page.getByRole('timer')).toHaveText(/^00:0[1-5]$/);
  await page.getByLabel('Your user id').fill('early-bird');
  await expect(page.getByRole('button', { name: 'Buy now' })).toBeDisabled();
  await page.screenshot({ path: `${shots}/upcoming.png` });

  await expect(page.getByText('The sale is live')).toBeVisible({ timeout: 10_000 });
  await expect(page.getByRole('button', { name: 'Buy now' })).toBeEnabled();
});

test('active: buying shows the order id, the stock drops, the same user again is told so', async ({ page }) => {
  await startSale({ stock: 3, startsIn: -60, endsIn: 3600 });
  await page.goto('/');
  await expect(page.getByText('3 of 3 left')).toBeVisible();
  await page.screenshot({ path: `${shots}/active.png` });

  await buy(page, 'shopper-1');

  const result = page.getByRole('status');
  await expect(result).toHaveText(/Purchase confirmed! Your order id is [0-9a-f-]{36}\./);
  const orderId = (await result.textContent())?.match(/[0-9a-f-]{36}/)?.[0];
  await expect(page.getByText('2 of 3 left')).toBeVisible();
  await page.screenshot({ path: `${shots}/confirmed.png` });

  await buy(page, 'shopper-1');
  await expect(result).toHaveText(`You have already purchased this item. Your order id is ${orderId}.`);
  await page.screenshot({ path: `${shots}/already-purchased.png` });
});

test('sold out: every open page says so and the button stays disabled', async ({ page, browser }) => {
  await startSale({ stock: 1, startsIn: -60, endsIn: 3600 });
  const other = await browser.newPage();
  await page.goto('/');
  await other.goto('/');
  await expect(other.getByText('1 of 1 left')).toBeVisible();

  await buy(page, 'last-buyer');
  await expect(page.getByRole('status')).toHaveText(/Purchase confirmed!/);

  // The other page learns it from the live stream, without reloading.
  await expect(other.getByText('Sold out')).toBeVisible();
  await other.getByLabel('Your user id').fill('too-late');
  await expect(other.getByRole('button', { name: 'Buy now' })).toBeDisabled();
  await other.screenshot({ path: `${shots}/sold-out.png` });
  await other.close();
});

test('ended: the sale says it ended and nothing can be bought', async ({ page }) => {
  await startSale({ stock: 5, startsIn: -7200, endsIn: -3600 });
  await page.goto('/');

  await expect(page.getByText('Sale ended')).toBeVisible();
  await page.getByLabel('Your user id').fill('latecomer');
  await expect(page.getByRole('button', { name: 'Buy now' })).toBeDisabled();
  await page.screenshot({ path: `${shots}/ended.png` });
});

test('a 375 px wide phone, keyboard only: nothing overflows and Enter buys', async ({ page }) => {
  await startSale({ stock: 5, startsIn: -60, endsIn: 3600 });
  await page.setViewportSize({ width: 375, height: 740 });
  await page.goto('/');
  await expect(page.getByText('5 of 5 left')).toBeVisible();
  // The form appears once the shop knows how buyers are named (/api/config).
  await expect(page.getByLabel('Your user id')).toBeVisible();

  await page.keyboard.press('Tab');
  await expect(page.getByLabel('Your user id')).toBeFocused();
  await page.keyboard.type('thumbs-only');
  await page.keyboard.press('Enter');

  await expect(page.getByRole('status')).toHaveText(/Purchase confirmed!/);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: `${shots}/mobile.png`, fullPage: true });
});
