"""The durable per-recipient journal of a send run: what the delivery log holds, and when.

For each message (the SMTP side: `pipeline.delivery.smtp.transmit`):

1. MAIL FROM and RCPT TO; a refused recipient is recorded (4xx: retried later, 5xx:
   bounced) and nothing was sent.
2. `claim` marks the row `sending` and makes that commit durable (synchronous=FULL) while
   DATA and the message body go out, but always *before* the final `.` that makes the
   server accept the message. A process killed before that dot leaves a half-sent DATA
   that the server discards, so the recipient is still `pending` and gets it on the next
   run.
3. After the server's reply `record` writes the outcome; that commit need not wait for
   the disk: if it is lost, the row stays `sending`.

A run first turns every `sending` row it finds into `uncertain` (`DeliveryLog.begin_run`):
the message was in flight when the previous run died (at most one per connection) and may
or may not have arrived. Those are only sent again with `--resend-uncertain`. So a
subscriber never gets an issue twice, whatever is killed when.

Writes go through one writer thread that commits whatever the connection threads queued
meanwhile in one transaction (group commit), so several connections share each fsync. A
lone statement commits by itself: on PostgreSQL a BEGIN and a COMMIT are two more round
trips per write.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from pipeline.state import StateStore, set_durable, transaction, utc_text
from pipeline.state.deliveries import DeliveryLog, Recipient

Write = Callable[[DeliveryLog], object]


class JournalError(Exception):
    """A write to the delivery log failed; every later write is refused."""


class ClaimLost(Exception):
    """The run no longer holds the recipient (it was reaped while it stalled, and another
    run has the recipient now): the message must not be finished."""


class Ticket:
    __slots__ = ("_done", "_journal", "result")

    def __init__(self, journal: Journal) -> None:
        self._done = threading.Event()
        self._journal = journal
        self.result: object = None

    def wait(self) -> None:
        """Until the write is committed; JournalError if the journal failed instead,
        ClaimLost if the write found the recipient taken by another run."""
        self._done.wait()
        if self._journal.error is not None:
            raise JournalError(str(self._journal.error))
        if self.result is False:
            raise ClaimLost()


def _stamp() -> str:
    return utc_text(datetime.now(UTC))


class Journal:
    """The writes of one send run of `issue`, from several threads, with group commit."""

    def __init__(
        self, state: StateStore, issue: int, run_id: int, retries: int, retry_delay: float
    ) -> None:
        self.issue = issue
        self.run_id = run_id
        self.retries = retries
        self.retry_delay = retry_delay
        # The writer thread's own connections: one whose commits wait for the disk (claims),
        # one whose commits need not (outcomes), so no commit has to switch the setting.
        self.durable_db = state.connect()
        self.quick_db = state.connect()
        set_durable(self.durable_db, True)
        set_durable(self.quick_db, False)
        self.error: BaseException | None = None
        self._logs = {True: DeliveryLog(self.durable_db), False: DeliveryLog(self.quick_db)}
        self._pending: deque[tuple[Write | None, bool, bool, Ticket]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="krimppost-journal", daemon=True)
        self._thread.start()

    # the per-recipient steps -----------------------------------------------------------

    def claim(self, subscriber: int, message_id: str) -> Ticket:
        """Mark the recipient `sending`; wait for the ticket before the final dot."""
        stamp = _stamp()
        return self._submit(
            lambda log: log.mark_sending(self.issue, subscriber, self.run_id, message_id, stamp),
            durable=True,
            single=True,
        )

    def record(self, recipient: Recipient, status: str, reply: str) -> str:
        """Write an attempt's outcome; returns it, `failed` for a deferral past the retries."""
        next_attempt = None
        if status == "deferred":
            tries = recipient.run_attempts + 1
            if tries > self.retries:
                status = "failed"
            else:
                next_attempt = time.time() + self.retry_delay * 2 ** (tries - 1)
        stamp = _stamp()
        self._submit(
            lambda log: log.record(
                self.issue, recipient.subscriber, status, reply, next_attempt, stamp
            ),
            single=status != "bounced",  # a bounce also ends the subscription
        )
        return status

    def uncertain(self, subscriber: int, reply: str) -> None:
        stamp = _stamp()
        self._submit(
            lambda log: log.mark_uncertain(self.issue, subscriber, reply, stamp), single=True
        )

    # the writer thread -------------------------------------------------------------------

    def flush(self) -> None:
        """Wait until everything submitted so far is on disk (or the journal failed)."""
        self._submit(None, durable=True)._done.wait()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        self.durable_db.close()
        self.quick_db.close()

    def _submit(self, write: Write | None, durable: bool = False, single: bool = False) -> Ticket:
        """Queue `write` (None: nothing, only wait); `single`: it is one statement."""
        ticket = Ticket(self)
        with self._cond:
            if self.error is not None or self._closing:
                ticket._done.set()
            else:
                self._pending.append((write, durable, single, ticket))
                self._cond.notify()
        return ticket

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                batch = list(self._pending)
                self._pending.clear()
            if not batch:
                return  # closing and nothing left
            # One durable write in the batch makes the whole commit wait for the disk.
            log = self._logs[any(wait for _, wait, _, _ in batch)]
            writes = [(write, one, ticket) for write, _, one, ticket in batch if write]
            try:
                if len(writes) == 1 and writes[0][1]:
                    write, _, ticket = writes[0]
                    ticket.result = write(log)
                elif writes:
                    # Each worker writes its own recipients' rows: row locks suffice.
                    with transaction(log.conn, exclusive=False):
                        for write, _, ticket in writes:
                            ticket.result = write(log)
            except BaseException as exc:
                with self._cond:
                    self.error = exc
                    rest = list(self._pending)
                    self._pending.clear()
                for *_, ticket in batch + rest:
                    ticket._done.set()
                return
            for *_, ticket in batch:
                ticket._done.set()
