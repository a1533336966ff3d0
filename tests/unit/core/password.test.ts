import { test } from 'uvu';
import * as assert from 'uvu/assert';
import bcrypt from 'bcryptjs';
import { hashPassword } from '../../../lib/core/password.ts';
import { Secret } from '../../../lib/core/secret.ts';

test('a worker thread hashes with bcrypt: the hash verifies, carries its cost and a fresh salt', async () => {
  const pw = new Secret('correct horse battery');
  const [a, b] = await Promise.all([hashPassword(pw, 5), hashPassword(pw, 5)]);
  assert.match(a, /^\$2[ab]\$05\$[./A-Za-z0-9]{53}$/);
  assert.ok(bcrypt.compareSync('correct horse battery', a));
  assert.not.ok(bcrypt.compareSync('correct horse batterY', a));
  assert.is.not(a, b, 'two hashes of one password differ by their salt');
});

test.run();
