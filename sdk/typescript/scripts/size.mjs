// The SDK's size as an application ships it: each entry point bundled by esbuild
// (minified, ESM, for browsers), then gzipped. Prints one JSON line per entry point;
// the goal for the main entry is 10 KB gzipped (issue 20).
import { build } from "esbuild";
import { gzipSync } from "node:zlib";

const entries = {
  "cosmictron": "src/index.ts",
  "cosmictron/msgpack (with @msgpack/msgpack)": "src/msgpack.ts",
};
for (const [name, entry] of Object.entries(entries)) {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    write: false,
  });
  const code = result.outputFiles[0].contents;
  const gzipped = gzipSync(code, { level: 9 }).length;
  console.log(JSON.stringify({ entry: name, minified_bytes: code.length, gzip_bytes: gzipped }));
}
