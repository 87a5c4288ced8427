"""A simulated RMCP+ BMC for pelagos-ipmi's tests (pyghmi).

Usage: fake_bmc.py PORT OPS_LOG [--user USER] [--password-env VAR] [--power on|off]
                   [--off-at-cycle] [--log-status]

Listens on 127.0.0.1:PORT/udp (PORT 0 picks a free port) and prints
"listening 127.0.0.1:<port>" on stdout once bound. The password is read from
the environment variable named by --password-env (default FAKE_BMC_PASSWORD,
else "secret") so it never shows in the simulator's argv either.
Every operation is appended to OPS_LOG as one JSON object per line:
{"t": <unix time>, "op": "on"|"off"|"cycle"|"reset"|"shutdown"|"bootdev",
 "power": <state after the op>, ...}; bootdev lines add "dev", "efi" and
"persistent" from the boot-flags parameter ipmitool sent.
--off-at-cycle: the first `power cycle` finds the chassis gone off (as if it
shut down between a status query and the cycle) and is rejected like one on
an off chassis.
--log-status: also record each power status query as {"op": "status"}, so
that a log shows every BMC call a client made.
"""
import argparse
import json
import os
import sys
import time

import pyghmi.ipmi.bmc as bmc
import pyghmi.ipmi.command as ipmicommand


class FakeBmc(bmc.Bmc):
    def __init__(self, authdata, port, log, power, off_at_cycle=False,
                 log_status=False):
        super().__init__(authdata, port=port, address='127.0.0.1')
        # pyghmi keys client sessions by self.port: with port 0 it must be
        # the port actually bound, or RAKP 1 goes unanswered.
        self.port = self.serversocket.getsockname()[1]
        self.power = power
        self.bootdev = 'default'
        self.log = log
        self.off_at_cycle = off_at_cycle
        self.log_status = log_status

    def rec(self, what, **extra):
        line = {'t': time.time(), 'op': what, 'power': self.power}
        line.update(extra)
        with open(self.log, 'a') as f:
            f.write(json.dumps(line) + '\n')

    def get_power_state(self):
        if self.log_status:
            self.rec('status')
        return self.power

    def power_off(self):
        self.power = 'off'
        self.rec('off')

    def power_on(self):
        self.power = 'on'
        self.rec('on')

    def power_cycle(self):
        if self.off_at_cycle:
            self.off_at_cycle = False
            self.power = 'off'
        if self.power == 'off':
            self.rec('cycle-rejected')
            return 0xd5  # cannot cycle a powered-off chassis, like many real BMCs
        self.power = 'on'
        self.rec('cycle')

    def power_reset(self):
        self.rec('reset')

    def power_shutdown(self):
        self.power = 'off'
        self.rec('shutdown')

    def get_boot_device(self):
        return self.bootdev

    def set_system_boot_options(self, request, session):
        # Boot flags (parameter 5): data[1] bit 7 valid, bit 6 persistent,
        # bit 5 EFI; data[2] bits 5..2 the device.
        data = request['data']
        if data[0] == 5:
            code = (data[2] >> 2) & 0b1111
            dev = ipmicommand.boot_devices.get(code)
            if dev is None:
                session.send_ipmi_response(code=0xcc)
                return
            self.bootdev = dev
            self.rec('bootdev', dev=str(dev), efi=bool(data[1] & 0x20),
                     persistent=bool(data[1] & 0x40))
            session.send_ipmi_response()
            return
        super().set_system_boot_options(request, session)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('port', type=int)
    ap.add_argument('log')
    ap.add_argument('--user', default='admin')
    ap.add_argument('--password-env', default='FAKE_BMC_PASSWORD')
    ap.add_argument('--power', choices=('on', 'off'), default='off')
    ap.add_argument('--off-at-cycle', action='store_true')
    ap.add_argument('--log-status', action='store_true')
    a = ap.parse_args()
    password = os.environ.get(a.password_env, 'secret')
    b = FakeBmc({a.user: password}, a.port, a.log, a.power, a.off_at_cycle,
                a.log_status)
    sys.stdout.write('listening 127.0.0.1:%d\n' % b.port)
    sys.stdout.flush()
    b.listen()


if __name__ == '__main__':
    main()
