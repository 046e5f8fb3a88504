// Runs a BullMQ workload against one server and prints what became of every job, as JSON.
// Usage: node bullmq_driver.mjs PORT JOBS
//
// The workload: JOBS plain jobs, 5% delayed by one second, 5% failing once and retried, and
// one long job whose worker process is killed (SIGKILL) while it runs: BullMQ's stalled-job
// check gives it to another worker.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { Queue, QueueEvents } from 'bullmq';

const here = dirname(fileURLToPath(import.meta.url));
const port = Number(process.argv[2]);
const total = Number(process.argv[3]);
const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}
const worker = () => spawn('node', [join(here, 'bullmq_worker.mjs'), String(port)], { stdio: 'ignore' });

const queue = new Queue('jobs', { connection });
await queue.obliterate({ force: true });

const victim = await queue.add('long', { x: -1, sleepMs: 3000 }, { attempts: 1 });
let w = worker();
await waitFor(async () => (await queue.getJob(victim.id)).processedOn !== undefined
  && await (await queue.getJob(victim.id)).isActive(), 60000, 'the long job to start');
w.kill('SIGKILL');

const expected = new Map();
const bulk = [];
for (let i = 0; i < total; i++) {
  const opts = { attempts: 3, backoff: { type: 'fixed', delay: 100 }, removeOnComplete: false };
  if (i % 20 === 0) opts.delay = 1000;
  bulk.push({ name: 'sq', data: { x: i, fail: i % 20 === 1 }, opts });
}
for (let i = 0; i < bulk.length; i += 100) {
  const jobs = await queue.addBulk(bulk.slice(i, i + 100));
  jobs.forEach((job, k) => expected.set(job.id, (i + k) * (i + k)));
}

const workers = [worker(), worker()];
try {
  await waitFor(async () => (await queue.getJobCounts('completed')).completed >= total + 1, 300000,
    `${total} jobs to complete`);
} finally {
  workers.forEach((p) => p.kill('SIGTERM'));
}
let wrong = 0;
let retried = 0;
for (const [id, value] of expected) {
  const job = await queue.getJob(id);
  if (!job || job.returnvalue !== value) wrong++;
  if (job && job.data.fail && job.attemptsMade === 2) retried++;
}
const v = await queue.getJob(victim.id);
const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed');
console.log(JSON.stringify({
  jobs: total,
  completed: total - wrong,
  wrong_or_lost: wrong,
  retried_once: retried,
  killed_job_returnvalue: v ? v.returnvalue : null,
  left: { waiting: counts.waiting, active: counts.active, delayed: counts.delayed, failed: counts.failed },
}));
await queue.close();
process.exit(0);
