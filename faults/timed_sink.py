"""An SMTP sink that records when each transaction began.

For every message it accepts (after the final dot) it appends one line to LOG:
"<MAIL FROM read, Unix seconds> <recipient>" per recipient. The time is taken when the server reads
MAIL FROM, the first command of the exchange; the sender began it a little earlier.

    python timed_sink.py PORT LOG
"""

import asyncio
import sys
import time

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(self, log):
        self.log = log

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        session.began = time.time()
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        lines = "".join(f"{session.began:.6f} {rcpt}\n" for rcpt in envelope.rcpt_tos)
        self.log.write(lines)
        self.log.flush()
        return "250 OK"


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    with open(path, "a", encoding="utf-8") as log:
        controller = Controller(Recorder(log), hostname="127.0.0.1", port=port,
                                decode_data=False, enable_SMTPUTF8=True)
        controller.start()
        try:
            asyncio.run(asyncio.Event().wait())
        except KeyboardInterrupt:
            pass
        finally:
            controller.stop()


if __name__ == "__main__":
    main()
