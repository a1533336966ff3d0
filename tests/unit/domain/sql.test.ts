import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { quoteIdent, quoteLiteral } from '../../../lib/domain/sql.ts';

// node-postgres's own escaping is the oracle: the generated SQL must not change by leaving the driver out.
test('quoting matches node-postgres for quotes, backslashes and empty strings', () => {
  for (const s of ['users', 'it\'s', 'back\\slash', '"quoted"', "x\\'y", '', 'naïve ✓']) {
    assert.is(quoteLiteral(s), pg.escapeLiteral(s), s);
    assert.is(quoteIdent(s), pg.escapeIdentifier(s), s);
  }
});

test.run();
