/**
 * The `s3:` store URL (spec §6):
 *
 *   s3://bucket                                  AWS, region and credentials from the environment
 *   s3://bucket/some/prefix?region=eu-central-1  objects under some/prefix/
 *   s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&forcePathStyle=true
 *   s3://ACCESS_KEY:SECRET@bucket/prefix?endpoint=…  credentials in the user info (percent-encoded)
 *
 * Query options: endpoint (http or https URL of an S3-compatible server),
 * region, forcePathStyle (default true when an endpoint is given, else false),
 * sessionToken (with user-info credentials), concurrency (requests in flight
 * per upload, default 32), maxAttempts (per request, default 5),
 * socketTimeoutMs (a silent connection is dropped and retried; default
 * 60 000, 0 never), conditionalWrites (auto, true or false; default auto).
 * Without user-info credentials the AWS SDK's default chain applies
 * (environment, shared config and credentials files, SSO, instance roles).
 */
import { InvalidUrlError, parseBooleanOption, readStoreUrl, redactUrl } from "@castore-ts/core";
import type { RetryOptions } from "./retry.js";

export const S3_URL_EXAMPLE = "s3://bucket/prefix?endpoint=http://host:port&region=…&forcePathStyle=true";

/** Whether writes send `If-None-Match: *`. auto: send it, and stop if the server answers 501 Not Implemented. */
export type ConditionalWrites = "auto" | boolean;

export interface S3Location {
  bucket: string;
  /** Key prefix: "" or ending in "/". */
  prefix: string;
}

export interface S3Url extends S3Location {
  endpoint?: string;
  region?: string;
  forcePathStyle: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  concurrency?: number;
  retry: RetryOptions;
  socketTimeoutMs?: number;
  conditionalWrites?: ConditionalWrites;
}

const OPTIONS = [
  "endpoint",
  "region",
  "forcePathStyle",
  "sessionToken",
  "concurrency",
  "maxAttempts",
  "socketTimeoutMs",
  "conditionalWrites",
];

function invalid(text: string, why: string): InvalidUrlError {
  return new InvalidUrlError(
    `invalid s3 store URL ${JSON.stringify(redactUrl(text))}: ${why}; expected ${S3_URL_EXAMPLE}`,
  );
}

function parsePositiveInt(text: string, name: string, value: string, max: number): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) {
    throw invalid(text, `${name}=${JSON.stringify(value)} is not an integer from 1 to ${max}`);
  }
  return n;
}

function decode(text: string, part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw invalid(text, `the ${what} is not valid percent-encoding`);
  }
}

/** The key prefix for a path: no leading or trailing slash, then one trailing slash unless empty. */
export function normalizePrefix(path: string): string {
  const trimmed = path.replace(/^\/+/, "").replace(/\/+$/, "");
  return trimmed === "" ? "" : `${trimmed}/`;
}

/** Parses an `s3:` URL. Credentials in the user info are returned, never put into messages. */
export function parseS3Url(input: URL | string): S3Url {
  const { url, text } = readStoreUrl(input, "s3:", invalid);
  if (url.port) throw invalid(text, "a port belongs in ?endpoint=, not after the bucket");
  const bucket = decode(text, url.hostname, "bucket");
  if (bucket === "") throw invalid(text, "no bucket given (s3://bucket/prefix)");
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(bucket) || bucket.length > 255) {
    throw invalid(text, `${JSON.stringify(bucket)} is not a bucket name`);
  }
  const prefix = normalizePrefix(decode(text, url.pathname, "path"));

  let credentials: S3Url["credentials"];
  if (url.username || url.password) {
    if (!url.username || !url.password) throw invalid(text, "user info must be ACCESS_KEY_ID:SECRET_ACCESS_KEY");
    credentials = {
      accessKeyId: decode(text, url.username, "access key id"),
      secretAccessKey: decode(text, url.password, "secret access key"),
    };
  }

  const reject = (why: string) => invalid(text, why);
  const out: S3Url = { bucket, prefix, forcePathStyle: false, retry: {} };
  let forcePathStyle: boolean | undefined;
  for (const [name, value] of url.searchParams) {
    switch (name) {
      case "endpoint": {
        let endpoint: URL;
        try {
          endpoint = new URL(value);
        } catch {
          throw invalid(text, `endpoint=${JSON.stringify(value)} is not a URL`);
        }
        if (endpoint.protocol !== "http:" && endpoint.protocol !== "https:") {
          throw invalid(text, `endpoint must be an http:// or https:// URL, got ${JSON.stringify(endpoint.protocol)}`);
        }
        if (endpoint.username || endpoint.password)
          throw invalid(text, "put credentials in the s3:// user info, not in the endpoint");
        out.endpoint = value.replace(/\/+$/, "");
        break;
      }
      case "region":
        if (!/^[a-z0-9-]+$/i.test(value)) throw invalid(text, `region=${JSON.stringify(value)} is not a region name`);
        out.region = value;
        break;
      case "forcePathStyle":
        forcePathStyle = parseBooleanOption(name, value, reject);
        break;
      case "sessionToken":
        if (!credentials) throw invalid(text, "sessionToken needs credentials in the user info");
        credentials.sessionToken = value;
        break;
      case "concurrency":
        out.concurrency = parsePositiveInt(text, name, value, 1024);
        break;
      case "maxAttempts":
        out.retry.maxAttempts = parsePositiveInt(text, name, value, 100);
        break;
      case "socketTimeoutMs":
        out.socketTimeoutMs = value === "0" ? 0 : parsePositiveInt(text, name, value, 3_600_000);
        break;
      case "conditionalWrites":
        out.conditionalWrites = value.toLowerCase() === "auto" ? "auto" : parseBooleanOption(name, value, reject);
        break;
      default:
        throw invalid(text, `unknown option "${name}" (known: ${OPTIONS.join(", ")})`);
    }
  }
  out.forcePathStyle = forcePathStyle ?? out.endpoint !== undefined;
  if (credentials) out.credentials = credentials;
  return out;
}
