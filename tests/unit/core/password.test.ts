import { test } from 'uvu';
import * as assert from 'uvu/assert';
import bcrypt from 'bcryptjs';
import { hashPassword, verifyPassword } from '../../../lib/core/password.ts';
import { Secret } from '../../../lib/core/secret.ts';

test('a worker thread hashes with bcrypt: the hash verifies, carries its cost and a fresh salt', async () => {
  const pw = new Secret('correct horse battery');
  const [a, b] = await Promise.all([hashPassword(pw, 5), hashPassword(pw, 5)]);
  assert.match(a, /^\$2[ab]\$05\$[./A-Za-z0-9]{53}$/);
  assert.ok(bcrypt.compareSync('correct horse battery', a));
  assert.not.ok(bcrypt.compareSync('correct horse batterY', a));
  assert.is.not(a, b, 'two hashes of one password differ by their salt');
});

test('a worker thread verifies a password against a bcrypt hash', async () => {
  const hash = bcrypt.hashSync('correct horse battery', 4);
  assert.is(await verifyPassword('correct horse battery', hash), true);
  assert.is(await verifyPassword('correct horse batterY', hash), false);
  assert.is(await verifyPassword('', hash), false);
});

test.run();
