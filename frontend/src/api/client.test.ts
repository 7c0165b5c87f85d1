import { getConfig, purchase, toOutcome } from './client';

describe('toOutcome', () => {
  it('maps every answer of the api to an outcome', () => {
    expect(toOutcome(201, { orderId: 'o1' })).toEqual({ kind: 'confirmed', orderId: 'o1' });
    expect(toOutcome(409, { orderId: 'o1', message: 'x' })).toEqual({ kind: 'already-purchased', orderId: 'o1' });
    expect(toOutcome(410, { message: 'Sorry, the item is sold out.' })).toEqual({ kind: 'sold-out' });
    expect(toOutcome(400, { message: 'The sale has ended.' })).toEqual({ kind: 'not-active', message: 'The sale has ended.' });
    expect(toOutcome(400, { message: ['userId should not be empty'] })).toEqual({
      kind: 'invalid',
      problems: ['userId should not be empty'],
    });
    expect(toOutcome(429, { message: 'Too many purchase attempts. Maximum 3 attempts allowed.' }).kind).toBe(
      'too-many-attempts',
    );
    expect(toOutcome(503, null)).toEqual({ kind: 'busy' });
    expect(toOutcome(401, { message: 'The access token has expired.' })).toEqual({
      kind: 'signed-out',
      message: 'The access token has expired.',
    });
    expect(toOutcome(403, { message: 'userId does not match the signed-in buyer.' }).kind).toBe('forbidden');
  });
});

describe('purchase', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('sends the user id as JSON and reads the answer', async () => {
    const fetch = vi.fn().mockResolvedValue(new Response(JSON.stringify({ success: true, orderId: 'o9' }), { status: 201 }));
    vi.stubGlobal('fetch', fetch);

    await expect(purchase('u1')).resolves.toEqual({ kind: 'confirmed', orderId: 'o9' });
    expect(fetch).toHaveBeenCalledWith('/api/purchases', expect.objectContaining({ method: 'POST', body: '{"userId":"u1"}' }));
  });

  it('signed in, sends the token and names nobody in the body', async () => {
    const fetch = vi.fn().mockResolvedValue(new Response(JSON.stringify({ success: true, orderId: 'o9' }), { status: 201 }));
    vi.stubGlobal('fetch', fetch);

    await expect(purchase(null, 'tok')).resolves.toEqual({ kind: 'confirmed', orderId: 'o9' });
    expect(fetch).toHaveBeenCalledWith(
      '/api/purchases',
      expect.objectContaining({
        body: '{}',
        headers: expect.objectContaining({ Authorization: 'Bearer tok' }),
      }),
    );
  });

  it('turns a network failure into an outcome instead of throwing', async () => {
    vi.stubGlobal('fetch', vi.fn().mockRejectedValue(new TypeError('offline')));
    await expect(purchase('u1')).resolves.toEqual({ kind: 'network-error' });
  });
});

describe('getConfig', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('takes an api without /api/config (the seed) as the open contract', async () => {
    vi.stubGlobal('fetch', vi.fn().mockResolvedValue(new Response('{}', { status: 404 })));
    await expect(getConfig()).resolves.toEqual({ buyerAuth: 'none' });
  });
});
