// Command mailguard is an SMTP gateway that stops targeted email before it
// reaches Exchange or Postfix. See the README and docs/ for its use.
//
//	mailguard serve      [--config FILE]
//	mailguard check      [--config FILE] [--builtin]
//	mailguard scan       [--config FILE] [--from A] [--rcpt B] [--client-ip IP] [--helo H] [--json] FILE.eml…
//	mailguard quarantine list|show|release|delete|export …
//	mailguard hunt       [--config FILE] (--sha256 H | --from ADDR | --yara RULES.yar…) [--since DUR] [--json]
//	mailguard purge      [--config FILE] [--dry-run] [--now TIME] [--json]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// exitError carries an exit status out of a command.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// usageError is a command-line mistake: printed with the usage, exit 2.
type usageError string

func (e usageError) Error() string { return string(e) }

const usage = `usage: mailguard <command> [flags]

commands:
  serve       run the gateway
  check       validate the policy file (errors as file:line:col: message)
  scan        inspect .eml files offline exactly as serve would
  quarantine  list|show|release|delete|export|unlock held and quarantined mail
  hunt        find stored messages by file hash, sender or new YARA rules
  purge       apply the retention policy once (serve does it every interval)

Every command takes --config FILE (default ./policy.hcl). Run
"mailguard <command> -h" for its flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(args[1:], stderr)
	case "check":
		err = cmdCheck(args[1:], stdout, stderr)
	case "scan":
		err = cmdScan(args[1:], stdout, stderr)
	case "quarantine":
		err = cmdQuarantine(args[1:], stdin, stdout, stderr)
	case "hunt":
		err = cmdHunt(args[1:], stdout, stderr)
	case "purge":
		err = cmdPurge(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "mailguard: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ee exitError
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return int(ee)
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "mailguard %s: %s\n", args[0], ue)
		return 2
	default:
		fmt.Fprintf(stderr, "mailguard %s: %v\n", args[0], err)
		return 1
	}
}

// parseFlags parses flags that may come before or after positional
// arguments ("quarantine show ID --json"), returning the positionals.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// configFlag adds the --config flag every command takes.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "./policy.hcl", "policy file")
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }
