"""A simulated RMCP+ BMC for pelagos-ipmi's tests (pyghmi).

Usage: fake_bmc.py PORT OPS_LOG [--user USER] [--password-env VAR] [--power on|off]
                   [--off-at-cycle] [--log-status] [--qmp SOCKET]

Listens on 127.0.0.1:PORT/udp (PORT 0 picks a free port; --address ADDR
another local address) and prints "listening <address>:<port>" on stdout
once bound. The password is read from
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
--qmp SOCKET: drive a real QEMU (started with -no-shutdown and
-qmp unix:SOCKET,server=on,wait=off) through its QMP socket instead of a
variable: power status is QMP query-status (running = on, anything else =
off; --power is then ignored), power on = system_reset + cont (nothing if
already running), power off = stop + system_reset (nothing if already off),
cycle and reset = system_reset (cycle on an off chassis is rejected as
without --qmp; reset on an off chassis does nothing), soft off =
system_powerdown. The "power" in each OPS_LOG line is then read from QEMU
after the op. bootdev is only recorded: QEMU's boot order is its command
line's. One QMP connection is kept open and reopened if it drops; a QMP
error is printed on stderr and answered as a BMC failure (completion code
0xff).
"""
import argparse
import json
import os
import socket
import sys
import time

import pyghmi.ipmi.bmc as bmc
import pyghmi.ipmi.command as ipmicommand


class QmpError(Exception):
    pass


class Qmp:
    """One QMP connection to a QEMU, opened on first use and reopened once
    per command if it dropped."""

    TIMEOUT = 10.0

    def __init__(self, path):
        self.path = path
        self.sock = None
        self.buf = b''
        self.next_id = 0

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.buf = b''

    def _readmsg(self):
        while b'\n' not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError('QMP connection closed')
            self.buf += data
        line, self.buf = self.buf.split(b'\n', 1)
        return json.loads(line)

    def _send(self, cmd, args=None):
        self.next_id += 1
        ident = 'fake_bmc-%d' % self.next_id
        msg = {'execute': cmd, 'id': ident}
        if args:
            msg['arguments'] = args
        self.sock.sendall(json.dumps(msg).encode() + b'\n')
        while True:
            reply = self._readmsg()
            if 'event' in reply or reply.get('id') != ident:
                continue  # async events (RESET, STOP, ...) and stray replies
            if 'error' in reply:
                raise QmpError('%s: %s' % (cmd, reply['error'].get('desc', reply['error'])))
            return reply.get('return')

    def _connect(self):
        self.close()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.TIMEOUT)
        s.connect(self.path)
        self.sock = s
        greeting = self._readmsg()
        if 'QMP' not in greeting:
            raise QmpError('not a QMP greeting: %r' % greeting)
        self._send('qmp_capabilities')

    def execute(self, cmd, args=None):
        for attempt in (0, 1):
            try:
                if self.sock is None:
                    self._connect()
                return self._send(cmd, args)
            except QmpError:
                raise
            except (OSError, ValueError) as e:
                # dropped (QEMU restarted, socket closed, timeout): reopen once
                self.close()
                if attempt:
                    raise QmpError('%s: %s' % (cmd, e))

    def running(self):
        return bool(self.execute('query-status').get('running'))


def qmp_failure(what, e):
    sys.stderr.write('fake_bmc: %s: QMP: %s\n' % (what, e))
    sys.stderr.flush()
    return 0xff


class FakeBmc(bmc.Bmc):
    def __init__(self, authdata, port, log, power, off_at_cycle=False,
                 log_status=False, qmp=None, address='127.0.0.1'):
        super().__init__(authdata, port=port, address=address)
        # pyghmi keys client sessions by self.port: with port 0 it must be
        # the port actually bound, or RAKP 1 goes unanswered.
        self.port = self.serversocket.getsockname()[1]
        self.power = power
        self.bootdev = 'default'
        self.log = log
        self.off_at_cycle = off_at_cycle
        self.log_status = log_status
        self.qmp = Qmp(qmp) if qmp else None

    def rec(self, what, **extra):
        power = self.power
        if self.qmp is not None:
            try:
                power = 'on' if self.qmp.running() else 'off'
            except QmpError as e:
                qmp_failure(what, e)
                power = 'unknown'
        line = {'t': time.time(), 'op': what, 'power': power}
        line.update(extra)
        with open(self.log, 'a') as f:
            f.write(json.dumps(line) + '\n')

    def get_chassis_status(self, session):
        try:
            super().get_chassis_status(session)
        except QmpError as e:
            session.send_ipmi_response(code=qmp_failure('status', e))

    def get_power_state(self):
        if self.qmp is not None:
            # raises QmpError: get_chassis_status answers it as a failure
            self.power = 'on' if self.qmp.running() else 'off'
        if self.log_status:
            self.rec('status')
        return self.power

    def _qmp_off(self):
        if self.qmp.running():
            self.qmp.execute('stop')
            self.qmp.execute('system_reset')

    def power_off(self):
        if self.qmp is not None:
            try:
                self._qmp_off()
            except QmpError as e:
                return qmp_failure('off', e)
        self.power = 'off'
        self.rec('off')

    def power_on(self):
        if self.qmp is not None:
            try:
                if not self.qmp.running():
                    self.qmp.execute('system_reset')
                    self.qmp.execute('cont')
            except QmpError as e:
                return qmp_failure('on', e)
        self.power = 'on'
        self.rec('on')

    def power_cycle(self):
        try:
            if self.off_at_cycle:
                self.off_at_cycle = False
                if self.qmp is not None:
                    self._qmp_off()
                self.power = 'off'
            if self.qmp is not None:
                self.power = 'on' if self.qmp.running() else 'off'
            if self.power == 'off':
                self.rec('cycle-rejected')
                return 0xd5  # cannot cycle a powered-off chassis, like many real BMCs
            if self.qmp is not None:
                self.qmp.execute('system_reset')
        except QmpError as e:
            return qmp_failure('cycle', e)
        self.power = 'on'
        self.rec('cycle')

    def power_reset(self):
        if self.qmp is not None:
            try:
                if self.qmp.running():
                    self.qmp.execute('system_reset')
            except QmpError as e:
                return qmp_failure('reset', e)
        self.rec('reset')

    def power_shutdown(self):
        if self.qmp is not None:
            try:
                if self.qmp.running():
                    self.qmp.execute('system_powerdown')
            except QmpError as e:
                return qmp_failure('shutdown', e)
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
    ap.add_argument('--qmp', metavar='SOCKET')
    ap.add_argument('--address', default='127.0.0.1')
    a = ap.parse_args()
    password = os.environ.get(a.password_env, 'secret')
    b = FakeBmc({a.user: password}, a.port, a.log, a.power, a.off_at_cycle,
                a.log_status, a.qmp, a.address)
    sys.stdout.write('listening %s:%d\n' % (a.address, b.port))
    sys.stdout.flush()
    b.listen()


if __name__ == '__main__':
    main()
