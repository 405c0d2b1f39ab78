// An SMTP sink on loopback for the browser test: accepts every message, keeps it as JSON in a folder.
//
//   node browser/smtp-sink.mjs PORT FOLDER
//
// Each message becomes FOLDER/<n>.json with its envelope recipients, headers, subject, text and html.
// The file is written under a temporary name and renamed, so a reader never sees half a message.
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SMTPServer } from "smtp-server";
import { simpleParser } from "mailparser";

const [port, folder] = process.argv.slice(2);
if (!port || !folder) {
  console.error("usage: node smtp-sink.mjs PORT FOLDER");
  process.exit(2);
}
mkdirSync(folder, { recursive: true });
let count = 0;

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ["STARTTLS"],
  logger: false,
  banner: "enlace browser-test sink",
  size: 10 * 1024 * 1024,
  onData(stream, session, callback) {
    simpleParser(stream)
      .then((mail) => {
        count += 1;
        const record = {
          to: session.envelope.rcptTo.map((r) => r.address.toLowerCase()),
          subject: mail.subject ?? "",
          // Raw header lines ("List-Unsubscribe: <…>"), keyed by lower-case name.
          headers: Object.fromEntries(mail.headerLines.map((h) => [h.key, h.line])),
          text: mail.text ?? "",
          html: typeof mail.html === "string" ? mail.html : "",
        };
        const name = String(count).padStart(4, "0");
        writeFileSync(join(folder, `.${name}.tmp`), JSON.stringify(record, null, 2));
        renameSync(join(folder, `.${name}.tmp`), join(folder, `${name}.json`));
        callback();
      })
      .catch((err) => callback(err));
  },
});
server.on("error", (err) => console.error(`smtp sink: ${err.message}`));
server.listen(Number(port), "127.0.0.1", () => console.log(`smtp sink listening on 127.0.0.1:${port}`));

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
