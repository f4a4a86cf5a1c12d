#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""qmachinectl prints QEMU's JSON exactly, numbers and strings included:
json-glib keeps integers as int64 (18446744073709551615 came out as -1,
-9223372036854775808 only by luck) and prints numbers and strings its own
way (1.50 as 1.5, 1e3 as 1000.0, "\\u00E9" as "é").

The fake QEMU's x-bignum sends an X_BIGNUM event and a reply with such
numbers; qmp, command, events, wait-event, monitor and status print them
as QEMU wrote them, in text and in every JSON mode.

Environment (besides qmtest's):
  QMACHINECTL  the client binary
"""

import json
import os
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qmtest  # noqa: E402

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_qemu.py")

# the reply's "return" as the fake sends it, and the event's data as the
# daemon passes it on (whitespace dropped, nothing else changed)
RETURN = ('{"max": 18446744073709551615, "min": -9223372036854775808, "f": 1.50, '
          '"e": 1e3, "z": -0, "empty": {}, "s": "caf\\u00E9"}')
DATA = '{"max":18446744073709551615,"min":-9223372036854775808,"f":1.50,"list":[1e3,-0,{}],"s":"caf\\u00E9 \\"q\\" \\/"}'
EVENT = '{"timestamp":{"seconds":1700000000,"microseconds":2},"event":"X_BIGNUM","data":' + DATA + '}'

REPLY_PRETTY = """{
  "return" : {
    "max" : 18446744073709551615,
    "min" : -9223372036854775808,
    "f" : 1.50,
    "e" : 1e3,
    "z" : -0,
    "empty" : {    },
    "s" : "caf\\u00E9"
  }
}
"""
RETURN_PRETTY = """{
  "max" : 18446744073709551615,
  "min" : -9223372036854775808,
  "f" : 1.50,
  "e" : 1e3,
  "z" : -0,
  "empty" : {  },
  "s" : "caf\\u00E9"
}
"""
EVENTS_PRETTY_ONE = """  {
    "seq" : 1,
    "event" : {
      "timestamp" : {
        "seconds" : 1700000000,
        "microseconds" : 2
      },
      "event" : "X_BIGNUM",
      "data" : {
        "max" : 18446744073709551615,
        "min" : -9223372036854775808,
        "f" : 1.50,
        "list" : [
          1e3,
          -0,
          {          }
        ],
        "s" : "caf\\u00E9 \\"q\\" \\/"
      }
    }
  }"""


def qmachinectl_binary():
    exe = os.environ.get("QMACHINECTL")
    if exe:
        return os.path.abspath(exe)
    return os.path.join(qmtest.source_root(), "build", "src", "qmachinectl", "qmachinectl")


class NumbersTest(qmtest.QMTestCase):

    def ctl_env(self):
        env = dict(os.environ)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.env.system_address
        env["SYSTEMD_PAGER"] = ""
        return env

    def ctl(self, *args, rc=0):
        r = subprocess.run([qmachinectl_binary()] + list(args), capture_output=True, text=True,
                           env=self.ctl_env(), timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual((r.returncode, r.stderr), (rc, ""), "qmachinectl %s" % " ".join(args))
        return r.stdout

    def start_monitor(self, *args):
        """A monitor whose match is in place (its note is on stderr)."""
        p = subprocess.Popen([qmachinectl_binary(), "monitor", "nb"] + list(args), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=self.ctl_env())
        self.addCleanup(self.stop_monitor, p)
        ready, _, _ = select.select([p.stderr], [], [], 30)
        self.assertTrue(ready, "no note from the monitor")
        self.assertIn(b"Ctrl-C", p.stderr.readline())
        return p

    def stop_monitor(self, p):
        if p.poll() is None:
            p.terminate()
        p.communicate(timeout=10)

    def read_line(self, p, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([p.stdout], [], [], 1)
            if ready:
                return p.stdout.readline().decode()
        self.fail("no line from the monitor")

    def test_numbers_as_qemu_wrote_them(self):
        path = self.create_machine("nb", binary=FAKE, args=["--fake-mode=normal"])
        self.launch(path)
        as_json = self.start_monitor("-o", "json")
        as_text = self.start_monitor()

        # qmp: indented (also -o json-pretty and -o value), or one line
        # (each call makes one more X_BIGNUM event)
        self.assertEqual(self.ctl("qmp", "nb", "x-bignum"), REPLY_PRETTY)
        self.assertEqual(self.ctl("qmp", "nb", "x-bignum", "-o", "json-pretty"), REPLY_PRETTY)
        self.assertEqual(self.ctl("qmp", "nb", "x-bignum", "-o", "value"), REPLY_PRETTY)
        self.assertEqual(self.ctl("qmp", "nb", "x-bignum", "-o", "json"),
                         '{"return":' + RETURN.replace(": ", ":").replace(", ", ",") + '}\n')
        self.assertEqual(self.ctl("command", "nb", "x-bignum"), RETURN_PRETTY)
        self.assertEqual(self.ctl("command", "nb", "x-bignum", "--json=short"),
                         RETURN.replace(": ", ":").replace(", ", ",") + "\n")
        calls = 6
        reply = json.loads(self.ctl("qmp", "nb", "x-bignum", "--json"))["return"]
        calls += 1
        self.assertEqual((reply["max"], reply["min"]), (2**64 - 1, -2**63))

        # the monitor: the event's data as the daemon passed it on
        line = self.read_line(as_json)
        self.assertRegex(line, r'^\{"machine":"nb","seq":1,"event":"X_BIGNUM","timestamp":[0-9]+,"data":')
        self.assertTrue(line.endswith(',"data":' + DATA + '}\n'), line)
        self.assertEqual(self.read_line(as_text), "nb 1 X_BIGNUM " + DATA + "\n")

        # events: QEMU's text in every mode
        self.assertEqual(self.ctl("events", "nb"), "".join("%d %s\n" % (i, EVENT) for i in range(1, calls + 1)))
        self.assertEqual(self.ctl("events", "nb", "-o", "json"),
                         "[" + ",".join('{"seq":%d,"event":%s}' % (i, EVENT) for i in range(1, calls + 1)) + "]\n")
        pretty = self.ctl("events", "nb", "-o", "json-pretty", "--after", str(calls - 1))
        self.assertEqual(pretty, "[\n" + EVENTS_PRETTY_ONE.replace('"seq" : 1', '"seq" : %d' % calls) + "\n]\n")
        self.assertEqual(self.ctl("wait-event", "nb", "X_BIGNUM", "--timeout", "0", "--json"),
                         '{"seq":1,"event":' + EVENT + '}\n')

        # status: the last events' data in the text, their text in JSON
        text = self.ctl("status", "nb")
        self.assertIn(" X_BIGNUM " + DATA + "\n", text)
        self.assertEqual(text.count(" X_BIGNUM "), 5, text)
        doc = self.ctl("status", "nb", "--json=short")
        self.assertTrue(doc.endswith(',"events":[' + ",".join(
            '{"seq":%d,"event":%s}' % (i, EVENT) for i in range(calls - 4, calls + 1)) + ']}\n'), doc)
        self.assertEqual(json.loads(doc)["name"], "nb")
        doc = self.ctl("status", "nb", "-o", "json-pretty")
        # status > events > one > event > data > list: indented by 10 and 12
        for line in ('"max" : 18446744073709551615,', '"min" : -9223372036854775808,', '"f" : 1.50,',
                     '  1e3,', '  -0,', '"s" : "caf\\u00E9 \\"q\\" \\/"'):
            self.assertIn("\n" + " " * 10 + line + "\n", doc)
        self.assertEqual(json.loads(doc)["events"][-1]["event"]["data"]["max"], 2**64 - 1)
        self.kill(path)


if __name__ == "__main__":
    qmtest.main()
