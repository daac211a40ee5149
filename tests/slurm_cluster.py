"""A real single-node SLURM cluster on 127.0.0.1, for tests.

munged, slurmctld and slurmd from Debian are started as child processes with a
private configuration (SLURM_CONF points at it; /etc is not touched) and
stopped by PID.  If the cluster cannot come up, the error says why, with the
daemons' logs: the test fails, it never passes silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

CONF = """\
ClusterName=envgentest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={w}/state
SlurmdSpoolDir={w}/spool
SlurmctldPidFile={w}/slurmctld.pid
SlurmdPidFile={w}/slurmd.pid
SlurmctldLogFile={w}/log/slurmctld.log
SlurmdLogFile={w}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={w}/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MinJobAge=600
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    def __init__(self, workdir: Path | None = None):
        # the daemons run as the slurm user, who cannot enter pytest's 0700 tmp dirs
        import tempfile

        self.w = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="envgen-slurm-"))
        os.chmod(self.w, 0o755)
        self.procs: list[subprocess.Popen] = []
        self.env = dict(os.environ)

    def _fail(self, why: str) -> RuntimeError:
        logs = []
        for f in sorted((self.w / "log").glob("*")):
            try:
                logs.append(f"--- {f.name}\n" + f.read_text()[-1500:])
            except OSError:
                pass
        return RuntimeError(f"the test SLURM cluster did not come up: {why}\n" + "\n".join(logs))

    def start(self) -> SlurmCluster:
        for tool in ("slurmctld", "slurmd", "munged", "sbatch", "sinfo"):
            if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
                raise RuntimeError(f"{tool} is not installed: apt-get install slurmctld slurmd slurm-client munge")
        host = socket.gethostname().split(".")[0]
        for d in ("state", "spool", "log", "out"):
            (self.w / d).mkdir(parents=True, exist_ok=True)
        shutil.chown(self.w / "state", "slurm", "slurm")
        shutil.chown(self.w / "log", "slurm", "slurm")
        conf = self.w / "slurm.conf"
        mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
        conf.write_text(CONF.format(host=host, w=self.w, cpus=os.cpu_count() or 1, mem_mb=mem_kb // 1024 - 512,
                                    ctld_port=_free_port(), d_port=_free_port()))
        self.env["SLURM_CONF"] = str(conf)
        os.environ["SLURM_CONF"] = str(conf)
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        if subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
            self._spawn(["setpriv", "--reuid=munge", "--regid=munge", "--init-groups", "/usr/sbin/munged", "-F"],
                        "munged.log")
            for _ in range(100):
                if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            else:
                raise self._fail("munged did not start")
        self._spawn(["/usr/sbin/slurmctld", "-D", "-i"], "ctld.out")
        self._spawn(["/usr/sbin/slurmd", "-D"], "slurmd.out")
        for _ in range(240):
            try:  # a controller that never answers must not hang the test until pytest's limit
                state = subprocess.run(["sinfo", "-h", "-n", host, "-o", "%T"], capture_output=True, text=True,
                                       env=self.env, timeout=10).stdout.strip()
            except subprocess.TimeoutExpired:
                state = "no answer"
            if state == "idle":
                return self
            for p in self.procs:
                if p.poll() is not None:
                    raise self._fail(f"{p.args[0]} exited with {p.returncode}")
            time.sleep(0.5)
        raise self._fail("the node never became idle")

    def _spawn(self, argv: list[str], log: str) -> None:
        fh = open(self.w / "log" / log, "wb")
        self.procs.append(subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=self.env))

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        os.environ.pop("SLURM_CONF", None)
        shutil.rmtree(self.w, ignore_errors=True)
