/**
 * A real three-node Cosmictron cluster on three NATS servers (test/cluster_driver.py, which
 * reuses the Python test harness), driven from a test: `lose` the NATS quorum, `restore` it.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { createInterface, type Interface } from "node:readline";
import { python, pythonEnv } from "./server.js";

export class TestCluster {
  /** Each node's URL by id: `a` leads `app`, `b` and `c` follow it. */
  nodes: Record<string, string> = {};
  /** Set instead of `nodes` when no cluster can run here (the test skips, saying why). */
  skip: string | undefined;
  private process!: ChildProcess;
  private lines!: Interface;
  private waiting: Array<(line: string) => void> = [];
  private output = "";

  static async start(): Promise<TestCluster> {
    const cluster = new TestCluster();
    const script = new URL("./cluster_driver.py", import.meta.url).pathname;
    cluster.process = spawn(python(), [script], { env: pythonEnv(), stdio: ["pipe", "pipe", "pipe"] });
    cluster.process.stderr!.on("data", (chunk) => (cluster.output = (cluster.output + chunk).slice(-20_000)));
    cluster.lines = createInterface({ input: cluster.process.stdout! });
    cluster.lines.on("line", (line) => {
      if (!line.startsWith("{")) return; // a node's own output, passed through
      cluster.waiting.shift()?.(line);
    });
    const first = JSON.parse(await cluster.next(180_000));
    if (first.skip) cluster.skip = first.skip;
    else cluster.nodes = first.nodes;
    return cluster;
  }

  /** Kill two NATS servers of three: no stream or bucket has a quorum. */
  loseQuorum(): Promise<void> {
    return this.command("lose");
  }

  /** Start one of them again: a quorum again. */
  restoreQuorum(): Promise<void> {
    return this.command("restore");
  }

  async stop(): Promise<void> {
    if (this.process.exitCode !== null) return;
    const exited = new Promise<void>((done) => this.process.once("exit", () => done()));
    this.process.stdin!.end("stop\n");
    await exited;
  }

  private async command(name: string): Promise<void> {
    this.process.stdin!.write(`${name}\n`);
    const answer = JSON.parse(await this.next(120_000));
    if (answer.done !== name) throw new Error(`the cluster driver answered ${JSON.stringify(answer)}`);
  }

  private next(timeoutMs: number): Promise<string> {
    return new Promise((done, fail) => {
      const timer = setTimeout(() => fail(new Error(`the cluster driver is silent:\n${this.output}`)), timeoutMs);
      this.process.once("exit", (code) => fail(new Error(`the cluster driver exited (${code}):\n${this.output}`)));
      this.waiting.push((line) => {
        clearTimeout(timer);
        done(line);
      });
    });
  }
}
