#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Tests of mpops-audit-types (tools/), run by meson (suite audit).

  check_audit.py fixture TOOL ELF SOURCE...
      exit 1, and exactly the findings the SOURCE files announce in
      "expect(KIND): PATH" / "allowed(KIND): PATH" comments, each with that
      kind, declared at that file and line; nothing else
  check_audit.py root TOOL ELF
      with --root fx_dev_local (a struct not named *_shared): its pointer,
      function pointer and fd-named member are reported under that root
  check_audit.py origin TOOL ELF
      exit 1, and exactly one finding not allowed: origin_shared.raw_ops,
      a pointer declared in tests/vtnet_origin.c
  check_audit.py clean TOOL ELF [ALLOWED_BY]
      exit 0, nothing but allowed findings, and (with ALLOWED_BY, e.g.
      shlock.m) at least one allowed finding, every one by that record
  check_audit.py bad TOOL FILE TEXT
      exit 2, nothing on stdout, one line on stderr that contains TEXT
"""
import json
import os
import re
import subprocess
import sys

MARK = re.compile(r'(expect|allowed)\(([a-z -]+)\): ([^ *]+)')


def fail(msg):
    print('FAIL: ' + msg)
    sys.exit(1)


def run(tool, *args):
    p = subprocess.run([tool, *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def audit_json(tool, elf, want_status):
    status, out, err = run(tool, '--json', elf)
    if status != want_status:
        fail(f'{elf}: exit status {status}, expected {want_status}\n{out}{err}')
    try:
        doc = json.loads(out)
    except ValueError as e:
        fail(f'{elf}: --json output is not JSON ({e}): {out!r}')
    # The text output agrees on the status.
    tstatus, tout, terr = run(tool, elf)
    if tstatus != status:
        fail(f'{elf}: text output exits {tstatus}, --json {status}\n{terr}')
    findings = [f for fl in doc['files'] for f in fl['findings']]
    bad = sum(not f['allowed'] for f in findings)
    if doc['not_allowed'] != bad or doc['allowed'] != len(findings) - bad:
        fail(f'{elf}: counts {doc["not_allowed"]}/{doc["allowed"]} do not match the findings')
    for f in findings:
        line = f'{f["path"]}: {f["kind"]}'
        if line not in tout:
            fail(f'{elf}: the text output lacks "{line}"')
        if f['allowed'] and f'{f["path"]}: ' in tout and 'allowed, because ' + f['reason'] not in tout:
            fail(f'{elf}: the text output does not say why {f["path"]} is allowed')
    return doc, findings


def expected_marks(sources):
    want = {}
    for src in sources:
        with open(src) as fh:
            for n, line in enumerate(fh, 1):
                for m in MARK.finditer(line):
                    want[m.group(3)] = (m.group(1) == 'allowed', m.group(2),
                                        os.path.basename(src), n)
    return want


def check_fixture(tool, elf, sources):
    want = expected_marks(sources)
    if not want:
        fail('no expect()/allowed() marks in ' + ' '.join(sources))
    _, findings = audit_json(tool, elf, 1)
    got = {}
    for f in findings:
        if f['path'] in got:
            fail(f'{f["path"]} reported twice')
        got[f['path']] = (f['allowed'], f['kind'], os.path.basename(f['decl_file']),
                          f['decl_line'])
        if f['allowed'] and not f.get('reason'):
            fail(f'{f["path"]} is allowed without a reason')
    for path in sorted(set(want) | set(got)):
        if path not in got:
            fail(f'not reported: {path} {want[path]}')
        if path not in want:
            fail(f'reported, not expected: {path} {got[path]}')
        if got[path] != want[path]:
            fail(f'{path}: (allowed, kind, file, line) {got[path]}, expected {want[path]}')
    print(f'ok: {len(want)} findings, exactly the expected ones')


def check_root(tool, elf):
    status, out, err = run(tool, '--json', '--root', 'fx_dev_local', elf)
    if status != 1:
        fail(f'{elf}: exit status {status}, expected 1\n{err}')
    got = {(f['path'], f['kind']) for fl in json.loads(out)['files']
           for f in fl['findings'] if f['root'] == 'fx_dev_local'}
    want = {('fx_dev_local.sh', 'pointer'), ('fx_dev_local.kickfd', 'process-local integer'),
            ('fx_dev_local.cb', 'function pointer')}
    if got != want:
        fail(f'{elf}: under --root fx_dev_local {sorted(got)}, expected {sorted(want)}')
    print('ok: --root fx_dev_local')


def check_origin(tool, elf):
    _, findings = audit_json(tool, elf, 1)
    bad = [f for f in findings if not f['allowed']]
    paths = [f['path'] for f in bad]
    if paths != ['origin_shared.raw_ops']:
        fail(f'{elf}: findings not allowed {paths}, expected [origin_shared.raw_ops]')
    f = bad[0]
    if f['kind'] != 'pointer' or os.path.basename(f['decl_file']) != 'vtnet_origin.c':
        fail(f'{elf}: raw_ops reported as {f["kind"]} at {f["decl_file"]}')
    print('ok: origin_shared.raw_ops')


def check_clean(tool, elf, allowed_by=None):
    doc, findings = audit_json(tool, elf, 0)
    if doc['not_allowed']:
        fail(f'{elf}: {doc["not_allowed"]} findings not allowed')
    if allowed_by:
        if not findings:
            fail(f'{elf}: no finding allowed by {allowed_by}: is the exception gone?')
        other = {f['allowed_by'] for f in findings} - {allowed_by}
        if other:
            fail(f'{elf}: findings allowed by {sorted(other)}, expected only {allowed_by}')
    print(f'ok: clean, {len(findings)} allowed, {doc["files"][0]["types"]} *_shared types')


def check_bad(tool, path, text):
    for args in (['--json', path], [path]):
        status, out, err = run(tool, *args)
        if status != 2:
            fail(f'{args}: exit status {status}, expected 2\n{out}{err}')
        if out:
            fail(f'{args}: wrote to stdout: {out!r}')
        lines = err.splitlines()
        if len(lines) != 1 or text not in lines[0]:
            fail(f'{args}: stderr {err!r}, expected one line with {text!r}')
    print('ok: ' + err.strip())


def main(argv):
    if len(argv) < 4:
        print(__doc__)
        return 2
    mode, tool, elf, rest = argv[1], argv[2], argv[3], argv[4:]
    if mode == 'fixture':
        check_fixture(tool, elf, rest)
    elif mode == 'root':
        check_root(tool, elf)
    elif mode == 'origin':
        check_origin(tool, elf)
    elif mode == 'clean':
        check_clean(tool, elf, *rest)
    elif mode == 'bad':
        check_bad(tool, elf, *rest)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
