// One BullMQ worker process for the interop driver: `node bullmq_worker.mjs PORT`.
// Squares `data.x`; fails the first attempt of jobs marked `fail` (BullMQ retries them);
// sleeps `data.sleepMs` first when given (the job whose worker is killed).
import { Worker } from 'bullmq';

const port = Number(process.argv[2]);
const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
const worker = new Worker(
  'jobs',
  async (job) => {
    if (job.data.sleepMs) {
      await new Promise((r) => setTimeout(r, job.data.sleepMs));
    }
    if (job.data.fail && job.attemptsMade < 1) {
      throw new Error(`first attempt of ${job.data.x} fails on purpose`);
    }
    return job.data.x * job.data.x;
  },
  // A job whose worker died loses its lock within 3 s and is then found stalled and given to
  // another worker within a second.
  { connection, concurrency: 4, lockDuration: 3000, stalledInterval: 1000, maxStalledCount: 1 },
);
worker.on('error', (e) => console.error(`worker error: ${e.message}`));
const stop = async () => {
  await worker.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
