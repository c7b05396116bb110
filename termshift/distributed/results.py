"""The results store, in Redis: what workers hand back to the coordinator.

Per run (`run id`), in keys sharing the hash tag `{run id}`:

- `results`: job id → the JobResult (JSON, zlib-compressed). Storing a job's result
  again (a redelivered job) overwrites it: one entry per job, whatever the deliveries.
- `arrived`: the job ids in the order their FIRST result was stored. The coordinator
  reads it from a cursor (`arrived(run, start)`), so each job is announced once, and a
  coordinator restarted at the same run reads it again from where its own records end.
- `recorded`: the jobs the coordinator has recorded in the archive (`mark_recorded`):
  their result is dropped from `results`, and a late duplicate (a worker that was
  thought dead finishing after all) is ignored rather than stored again.
- `attempts` and `claims`: deliveries per job and the worker of the latest one
  (redeliveries, jobs in flight per worker: for /status and /metrics); `stats`: counts
  of results stored, replaced and ignored.

Storing is one Lua script: the "first time?" test, the write and the announcement are
atomic. Every key of a run expires `ttl` seconds after its latest write (a run the
coordinator abandoned does not stay in Redis for good).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from termshift.distributed.jobs import JobResult

__all__ = ["IGNORED", "NEW", "REPLACED", "ResultStore"]

NEW = "new"
REPLACED = "replaced"
IGNORED = "ignored"

DEFAULT_TTL = 7 * 86400

# KEYS: results, arrived, recorded, stats. ARGV: job id, payload, ttl (s).
_PUT = """
local outcome
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then
  outcome = 'ignored'
elseif redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  outcome = 'new'
else
  outcome = 'replaced'
end
redis.call('HINCRBY', KEYS[4], outcome, 1)
for i = 1, 4 do
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[3]))
end
return outcome
"""


def encode(result: JobResult) -> bytes:
    return zlib.compress(json.dumps(result.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8"), 1)


def decode(payload: bytes) -> JobResult:
    return JobResult.from_json(json.loads(zlib.decompress(payload)))


class ResultStore:
    """Results of jobs by (run id, job id), over a `redis.Redis` client."""

    def __init__(self, client: Any, *, namespace: str = "termshift", ttl: int = DEFAULT_TTL) -> None:
        self.client = client
        self.namespace = namespace
        self.ttl = ttl
        self._put = client.register_script(_PUT)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ResultStore:
        import redis

        return cls(redis.Redis.from_url(url), **options)

    def _key(self, run_id: str, name: str) -> str:
        return f"{self.namespace}:run:{{{run_id}}}:{name}"

    # -- the workers' side -----------------------------------------------------------------

    def begin_attempt(self, run_id: str, job_id: str, worker: str) -> int:
        """Note that `worker` starts a delivery of the job; returns its number (1 the first time)."""
        attempts, claims = self._key(run_id, "attempts"), self._key(run_id, "claims")
        with self.client.pipeline() as pipe:
            pipe.hincrby(attempts, job_id, 1).hset(claims, job_id, worker)
            pipe.expire(attempts, self.ttl).expire(claims, self.ttl)
            attempt = pipe.execute()[0]
        return int(attempt)

    def put(self, result: JobResult) -> str:
        """Store a job's result: NEW (announced in `arrived`), REPLACED (a redelivery), or IGNORED
        (already recorded by the coordinator)."""
        keys = [self._key(result.run_id, name) for name in ("results", "arrived", "recorded", "stats")]
        outcome = self._put(keys=keys, args=[result.job_id, encode(result), self.ttl])
        return outcome.decode() if isinstance(outcome, bytes) else str(outcome)

    # -- the coordinator's side ------------------------------------------------------------

    def arrived(self, run_id: str, start: int = 0) -> list[str]:
        """Job ids whose result arrived, in arrival order, from position `start` on."""
        return [job.decode() for job in self.client.lrange(self._key(run_id, "arrived"), start, -1)]

    def get(self, run_id: str, job_id: str) -> JobResult | None:
        payload = self.client.hget(self._key(run_id, "results"), job_id)
        return None if payload is None else decode(payload)

    def mark_recorded(self, run_id: str, job_id: str) -> None:
        """The coordinator recorded the job: drop its result, ignore any later one."""
        with self.client.pipeline() as pipe:
            pipe.sadd(self._key(run_id, "recorded"), job_id).hdel(self._key(run_id, "results"), job_id)
            pipe.expire(self._key(run_id, "recorded"), self.ttl)
            pipe.execute()

    def is_recorded(self, run_id: str, job_id: str) -> bool:
        return bool(self.client.sismember(self._key(run_id, "recorded"), job_id))

    def attempts(self, run_id: str) -> dict[str, int]:
        return {job.decode(): int(count) for job, count in self.client.hgetall(self._key(run_id, "attempts")).items()}

    def claims(self, run_id: str) -> dict[str, str]:
        """Job id → the worker of its latest delivery."""
        return {job.decode(): worker.decode() for job, worker in self.client.hgetall(self._key(run_id, "claims")).items()}

    def stats(self, run_id: str) -> dict[str, int]:
        """Counts: results stored new / replaced / ignored, deliveries and redeliveries."""
        counts = {name: 0 for name in (NEW, REPLACED, IGNORED)}
        counts.update({name.decode(): int(value)
                       for name, value in self.client.hgetall(self._key(run_id, "stats")).items()})
        attempts = self.attempts(run_id)
        counts["deliveries"] = sum(attempts.values())
        counts["redeliveries"] = sum(count - 1 for count in attempts.values())
        return counts

    def forget_run(self, run_id: str) -> None:
        self.client.delete(*(self._key(run_id, name)
                             for name in ("results", "arrived", "recorded", "stats", "attempts", "claims")))
