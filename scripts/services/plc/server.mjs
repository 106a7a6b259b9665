// A real PLC directory on loopback: @did-plc/server's PlcServer with the package's own
// in-memory database (Database.mock(), the one its test suite runs on), so no Postgres.
// Usage: node server.mjs PORT
import server from '@did-plc/server';

const { PlcServer, Database } = server;
const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node server.mjs PORT');
  process.exit(2);
}
const plc = PlcServer.create({ db: Database.mock(), port });
await plc.start();
console.log(`plc directory on http://127.0.0.1:${port}`);
const stop = async () => {
  await plc.destroy();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
