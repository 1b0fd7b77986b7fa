#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Run a compiler command that must fail with TEXT in its diagnostics.

    expect_error.py TEXT -- CC ARGS...      the command must fail, saying TEXT
    expect_error.py --ok -- CC ARGS...      the command must succeed (a control)
"""
import subprocess
import sys

sep = sys.argv.index('--')
want, cmd = sys.argv[1], sys.argv[sep + 1:]
p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
if want == '--ok':
    if p.returncode != 0:
        sys.exit('the control did not compile:\n' + p.stdout)
    sys.exit(0)
if p.returncode == 0:
    sys.exit('compiled, but must fail with: ' + want)
if want not in p.stdout:
    sys.exit('failed without saying "%s":\n%s' % (want, p.stdout))
print(p.stdout)
