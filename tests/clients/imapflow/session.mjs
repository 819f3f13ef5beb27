// A scripted imapflow session against a running Roost server, over
// implicit TLS or STARTTLS, that trusts only the certificate file given.
//
// Usage: node session.mjs MODE HOST IMAP_PORT LMTP_PORT USER PASSWORD CA_FILE
// MODE is "imaps" (TLS from the first byte) or "starttls" (cleartext, then
// STARTTLS, which the client requires). Each step prints "imapflow: ..." on
// success; the last line is "imapflow: session complete". A failed step
// prints the error and the client's recent protocol log to stderr and exits
// with 1. The whole run is bounded by SESSION_TIMEOUT_MS.

import fs from 'node:fs';
import net from 'node:net';
import { ImapFlow } from 'imapflow';

/** Upper bound on the whole session, after which the script fails. */
const SESSION_TIMEOUT_MS = 90_000;
/** Upper bound on the wait for the EXISTS that an LMTP delivery causes. */
const IDLE_NOTIFY_TIMEOUT_MS = 15_000;
/** Log entries kept for the failure report. */
const LOG_ENTRIES_MAX = 300;

/** The special-use attribute each default mailbox must report (RFC 6154). */
const SPECIAL_USE = {
    Sent: '\\Sent',
    Drafts: '\\Drafts',
    Trash: '\\Trash',
    Junk: '\\Junk',
    Archive: '\\Archive',
};

const [mode, host, imapPort, lmtpPort, user, password, caFile] = process.argv.slice(2);
if (!['imaps', 'starttls'].includes(mode) || !caFile) {
    console.error('usage: node session.mjs imaps|starttls HOST IMAP_PORT LMTP_PORT USER PASSWORD CA_FILE');
    process.exit(2);
}
const ca = fs.readFileSync(caFile);

// The newest protocol log entries, printed when a step fails.
const recentLog = [];
function remember(level, entry) {
    recentLog.push(`${level} ${entry.msg ?? ''} ${describe(entry)}`);
    if (recentLog.length > LOG_ENTRIES_MAX) {
        recentLog.shift();
    }
}
const logger = Object.fromEntries(
    ['trace', 'debug', 'info', 'warn', 'error', 'fatal'].map(level => [level, entry => remember(level, entry)])
);

/** JSON for failure messages; imapflow returns UIDVALIDITY as a BigInt. */
function describe(value) {
    return JSON.stringify(value, (_, item) => (typeof item === 'bigint' ? item.toString() : item));
}

function check(condition, message) {
    if (!condition) {
        throw new Error(message);
    }
}

function newClient(tls) {
    return new ImapFlow({
        host,
        port: Number(imapPort),
        secure: mode === 'imaps',
        doSTARTTLS: mode === 'starttls' ? true : undefined,
        auth: { user, pass: password },
        tls,
        logger,
        // IDLE is started by hand below, so the test controls when it runs.
        disableAutoIdle: true,
        connectionTimeout: 20_000,
        greetingTimeout: 20_000,
        socketTimeout: 60_000,
    });
}

/** Delivers `message` to `recipient` over LMTP (RFC 2033), checking each reply. */
function deliverWithLmtp(recipient, message) {
    return new Promise((resolve, reject) => {
        const socket = net.connect({ host, port: Number(lmtpPort) });
        socket.setTimeout(20_000, () => socket.destroy(new Error('LMTP server timed out')));
        const steps = [
            ['220', 'LHLO imapflow.test\r\n'],
            ['250', 'MAIL FROM:<sender@example.net>\r\n'],
            ['250', `RCPT TO:<${recipient}>\r\n`],
            ['250', 'DATA\r\n'],
            ['354', message + '.\r\n'],
            ['250', 'QUIT\r\n'],
            ['221', null],
        ];
        let buffered = '';
        socket.on('data', chunk => {
            buffered += chunk.toString('latin1');
            // A reply ends with a line whose fourth character is a space;
            // "250-" lines continue it.
            let end;
            while ((end = buffered.indexOf('\r\n')) >= 0) {
                const line = buffered.slice(0, end);
                buffered = buffered.slice(end + 2);
                if (line[3] === '-') {
                    continue;
                }
                const [code, next] = steps.shift();
                if (!line.startsWith(code)) {
                    socket.destroy();
                    reject(new Error(`LMTP: expected ${code}, got ${JSON.stringify(line)}`));
                    return;
                }
                if (next === null) {
                    socket.end();
                    resolve();
                    return;
                }
                socket.write(next);
            }
        });
        socket.on('error', reject);
    });
}

function testMessage(subject, body) {
    return [
        'From: Alice <alice@example.org>',
        `To: ${user} <${user}@example.org>`,
        `Subject: ${subject}`,
        'Date: Mon, 7 Feb 1994 21:52:25 -0800',
        `Message-ID: <${subject}@example.org>`,
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=us-ascii',
        '',
        body,
        '',
    ].join('\r\n');
}

/** Checks that a client trusting only the system's CAs rejects the server. */
async function untrustedCertificateRejected() {
    const client = newClient({});
    try {
        await client.connect();
    } catch (err) {
        const text = `${err.code ?? ''} ${err.message}`;
        check(/certificate|self[- ]signed/i.test(text), `connect without the CA failed for another reason: ${text}`);
        return;
    } finally {
        client.close();
    }
    throw new Error('connect without the CA file succeeded; the server certificate was not verified');
}

async function session() {
    await untrustedCertificateRejected();
    console.log('imapflow: a client without the CA file rejects the certificate');

    const client = newClient({ ca, minVersion: 'TLSv1.2' });
    await client.connect();
    check(client.secureConnection, 'the connection is not using TLS after connect');
    check(client.authenticated, 'not authenticated after connect');
    console.log(`imapflow: logged in over ${mode} (${client.socket.getProtocol?.() ?? 'TLS'})`);

    const mailboxes = await client.list();
    const byPath = new Map(mailboxes.map(mailbox => [mailbox.path, mailbox]));
    check(byPath.has('INBOX'), `LIST has no INBOX: ${[...byPath.keys()].join(', ')}`);
    for (const [path, attribute] of Object.entries(SPECIAL_USE)) {
        const mailbox = byPath.get(path);
        check(mailbox, `LIST has no ${path}: ${[...byPath.keys()].join(', ')}`);
        check(
            mailbox.specialUse === attribute && mailbox.specialUseSource === 'extension',
            `${path} has special use ${mailbox.specialUse} from ${mailbox.specialUseSource}; ` +
                `expected ${attribute} reported by the server (RFC 6154 SPECIAL-USE)`
        );
    }
    console.log('imapflow: LIST reports the special-use mailboxes');

    const appendedText = testMessage('imapflow-append', 'Appended by imapflow.');
    const appended = await client.append('INBOX', appendedText, ['\\Seen']);
    check(appended && appended.uid, `APPEND returned no APPENDUID (RFC 4315): ${describe(appended)}`);
    console.log(`imapflow: APPEND stored UID ${appended.uid}`);

    const inbox = await client.mailboxOpen('INBOX');
    check(inbox.exists === 1, `INBOX has ${inbox.exists} messages after one APPEND`);

    const found = await client.search({ subject: 'imapflow-append' }, { uid: true });
    check(
        Array.isArray(found) && found.length === 1 && found[0] === appended.uid,
        `SEARCH SUBJECT found ${describe(found)}, expected [${appended.uid}]`
    );
    console.log('imapflow: SEARCH found the appended message');

    const fetched = await client.fetchOne(
        String(appended.uid),
        { uid: true, flags: true, envelope: true, source: true, bodyStructure: true },
        { uid: true }
    );
    check(fetched, `FETCH of UID ${appended.uid} returned nothing`);
    check(fetched.source.toString('latin1') === appendedText, 'FETCH BODY[] differs from the appended message');
    check(fetched.envelope.subject === 'imapflow-append', `ENVELOPE subject is ${fetched.envelope.subject}`);
    check(fetched.flags.has('\\Seen'), `flags are ${[...fetched.flags].join(' ')}, expected \\Seen`);
    check(fetched.bodyStructure.type === 'text/plain', `BODYSTRUCTURE type is ${fetched.bodyStructure.type}`);
    console.log('imapflow: FETCH returned the message, envelope, flags and structure');

    // IDLE, then deliver over LMTP and wait for the EXISTS it causes.
    let resolveExists;
    const existsSeen = new Promise(resolve => {
        resolveExists = resolve;
    });
    const onExists = event => {
        if (event.count === 2) {
            resolveExists(client.idling);
        }
    };
    client.on('exists', onExists);
    const idleFinished = client.idle();
    const idleStart = Date.now();
    while (!client.idling && Date.now() - idleStart < IDLE_NOTIFY_TIMEOUT_MS) {
        await new Promise(resolve => setTimeout(resolve, 20));
    }
    check(client.idling, 'the client did not enter IDLE');
    await deliverWithLmtp(`${user}@example.org`, testMessage('imapflow-idle', 'Delivered over LMTP during IDLE.'));
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(
            () => reject(new Error(`no EXISTS within ${IDLE_NOTIFY_TIMEOUT_MS} ms of the LMTP delivery`)),
            IDLE_NOTIFY_TIMEOUT_MS
        );
    });
    const idlingWhenSeen = await Promise.race([existsSeen, timeout]);
    clearTimeout(timer);
    client.off('exists', onExists);
    check(idlingWhenSeen, 'the EXISTS for the delivery arrived outside IDLE');
    console.log('imapflow: IDLE reported the LMTP delivery');

    // The next command ends IDLE with DONE.
    const delivered = await client.fetchOne('2', { uid: true, envelope: true });
    await idleFinished;
    check(delivered && delivered.envelope.subject === 'imapflow-idle', 'the delivered message is not message 2');

    const moved = await client.messageMove(String(appended.uid), 'Archive', { uid: true });
    check(moved, 'MOVE to Archive failed');
    check(
        moved.uidMap && moved.uidMap.size === 1 && moved.uidMap.has(appended.uid),
        `MOVE returned no COPYUID for UID ${appended.uid} (RFC 6851 with UIDPLUS)`
    );
    const archive = await client.status('Archive', { messages: true });
    check(archive.messages === 1, `Archive has ${archive.messages} messages after MOVE`);
    const inboxAfter = await client.status('INBOX', { messages: true });
    check(inboxAfter.messages === 1, `INBOX has ${inboxAfter.messages} messages after MOVE`);
    console.log('imapflow: MOVE put the message in Archive');

    await client.logout();
    console.log('imapflow: session complete');
}

const deadline = setTimeout(() => {
    console.error(`imapflow: the session took longer than ${SESSION_TIMEOUT_MS} ms`);
    console.error(recentLog.join('\n'));
    process.exit(1);
}, SESSION_TIMEOUT_MS);

try {
    await session();
    clearTimeout(deadline);
} catch (err) {
    console.error(`imapflow: ${err.stack ?? err}`);
    console.error('recent imapflow log:');
    console.error(recentLog.join('\n'));
    process.exit(1);
}
