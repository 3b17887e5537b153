import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { expandReferences, referencedNames } from '../../../src/kube/env/expansion.js';

const vars: Record<string, string> = {
  VAR_A: 'A',
  VAR_B: 'B',
  VAR_C: 'C',
  VAR_REF: '$(VAR_A)',
  VAR_EMPTY: '',
};
const lookup = (name: string) => vars[name];

describe('expandReferences (kubelet rules)', () => {
  const cases: [string, string, string][] = [
    ['whole string', '$(VAR_A)', 'A'],
    ['repeated', '$(VAR_A)-$(VAR_A)', 'A-A'],
    ['suffix', '$(VAR_A)-1', 'A-1'],
    ['surrounded', '___$(VAR_B)___', '___B___'],
    ['three', '$(VAR_A)_$(VAR_B)_$(VAR_C)', 'A_B_C'],
    ['escaped then real', '$$(VAR_B)_$(VAR_A)', '$(VAR_B)_A'],
    ['two escaped', '$$(VAR_A)_$$(VAR_B)', '$(VAR_A)_$(VAR_B)'],
    ['escaped operator without parens', 'f000-$$VAR_A', 'f000-$VAR_A'],
    ['backslash is not an escape', 'foo\\$(VAR_C)bar', 'foo\\Cbar'],
    ['nested reference is one name', '$(VAR_A$(VAR_B))', '$(VAR_A$(VAR_B))'],
    ['nested unterminated', '$(VAR_A$(VAR_B)', '$(VAR_A$(VAR_B)'],
    ['no recursion', '$(VAR_REF)', '$(VAR_A)'],
    ['empty value', 'foo$(VAR_EMPTY)bar', 'foobar'],
    ['unterminated', 'foo$(VAR_Awhoops!', 'foo$(VAR_Awhoops!'],
    ['parens without operator', 'f00__(VAR_A)__', 'f00__(VAR_A)__'],
    ['lone operators', '$?_boo_$!', '$?_boo_$!'],
    ['shell style is literal', '$VAR_A', '$VAR_A'],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell-style braces are the point
    ['braces are literal', '${VAR_A}', '${VAR_A}'],
    ['missing stays', '$(VAR_DNE)', '$(VAR_DNE)'],
    ['six dollars', '$$$$$$(BIG_MONEY)', '$$$(BIG_MONEY)'],
    ['six dollars, known', '$$$$$$(VAR_A)', '$$$(VAR_A)'],
    ['seven dollars, missing', '$$$$$$$(GOOD_ODDS)', '$$$$(GOOD_ODDS)'],
    ['seven dollars, known', '$$$$$$$(VAR_A)', '$$$A'],
    ['trailing unterminated', '$(VAR_B)_______$(A', 'B_______$(A'],
    ['trailing bare opener', '$(VAR_C)_______$(', 'C_______$('],
    ['trailing operator', '$(VAR_A)foobarzab$', 'Afoobarzab$'],
    ['many openers', '--$($($($($--', '--$($($($($--'],
    ['openers then end', 'foo0--$($($($(', 'foo0--$($($($('],
    ['dollars inside a name', '$(foo$$var)', '$(foo$$var)'],
    ['multi-byte after operator', '$£FOO', '$£FOO'],
    ['astral after operator', 'x$😀y', 'x$😀y'],
    ['empty name', '$()', '$()'],
    ['empty input', '', ''],
    ['only operator', '$', '$'],
  ];
  for (const [name, input, expected] of cases) {
    it(name, () => assert.equal(expandReferences(input, lookup), expected));
  }

  it('lists referenced names, not escaped ones', () => {
    assert.deepEqual(referencedNames('$(A)-$$(B)-$(C)$(A'), ['A', 'C']);
  });
});
