import { ValidationError } from "./errors.ts";

/**
 * What a queue name or a key prefix may be: 1–200 characters without whitespace or braces. Braces
 * would break the hash tag `{<queue>}` that keeps a queue on one Redis Cluster slot (`x{}` as a
 * prefix would spread one queue over three slots), and whitespace would break the space-separated
 * lists some events carry.
 */
export const NAME_PATTERN: RegExp = /^[^\s{}]{1,200}$/;

/** The message every name check gives. */
export const NAME_MESSAGE = "must be 1-200 characters without whitespace or braces";

/** True when `name` is a valid queue name or prefix. */
export function isValidName(name: unknown): name is string {
  return typeof name === "string" && NAME_PATTERN.test(name);
}

/**
 * Checks a queue name or a key prefix; throws a `ValidationError` naming `field` and the value.
 *
 * @example
 * ```ts
 * checkName("emails", "queue"); // "emails"
 * checkName("x{}", "prefix");   // throws: Invalid prefix: prefix must be 1-200 characters …
 * ```
 */
export function checkName(name: unknown, field: string): string {
  if (!isValidName(name)) {
    const what = field === "prefix" ? "prefix" : "queue name";
    throw new ValidationError(`Invalid ${what}`, [{ field, value: name, message: NAME_MESSAGE }]);
  }
  return name;
}
