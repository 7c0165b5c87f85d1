import { countdown } from './time';
import { userIdProblem } from './userId';

describe('userIdProblem', () => {
  it('accepts what the api accepts', () => {
    for (const ok of ['user-42', 'a', 'Alice.Smith@example.com', 'x_y+z:1', 'a'.repeat(64)]) {
      expect(userIdProblem(ok)).toBeNull();
    }
  });
  it('refuses blank, too long and oddly spelled ids', () => {
    expect(userIdProblem('')).toMatch(/enter/i);
    expect(userIdProblem('   ')).toMatch(/enter/i);
    expect(userIdProblem('a'.repeat(65))).toMatch(/64/);
    expect(userIdProblem('a b')).toMatch(/no spaces/);
  });
});

describe('countdown', () => {
  it('formats minutes, hours and days', () => {
    expect(countdown(65_000, 0)).toBe('01:05');
    expect(countdown(3_723_000, 0)).toBe('01:02:03');
    expect(countdown(90_061_000, 0)).toBe('1d 01:01:01');
    expect(countdown(0, 5_000)).toBe('00:00');
  });
});
