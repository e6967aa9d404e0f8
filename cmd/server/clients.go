package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/rotorauth/rotor/internal/password"
	"github.com/rotorauth/rotor/internal/store/postgres"
	"github.com/rotorauth/rotor/internal/tokens"
)

// clientsFile is the declarative list of clients CLIENTS_FILE names (and
// `server clients apply FILE` reads): JSON, one object per client.
type clientsFile struct {
	Clients []clientEntry `json:"clients"`
}

// clientEntry is one client of a clients file. Absent fields keep their
// stored value (or take the defaults of a new client).
type clientEntry struct {
	ID             string    `json:"client_id"`
	Name           *string   `json:"name"`
	Type           string    `json:"type"`
	GrantTypes     *[]string `json:"grant_types"`
	AllowedOrigins *[]string `json:"allowed_origins"`
	Audience       *string   `json:"audience"`
	Roles          *[]string `json:"roles"`
	Disabled       *bool     `json:"disabled"`
	// Secret, or the name of an environment variable holding it (so the
	// file itself can be committed), for confidential clients.
	Secret    string `json:"secret"`
	SecretEnv string `json:"secret_env"`
}

// readClientsFile parses path into specs, taking secret_env secrets from
// getenv.
func readClientsFile(path string, getenv func(string) string) ([]tokens.ClientSpec, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- the operator names the file
	if err != nil {
		return nil, err
	}
	var f clientsFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: data after the clients object", path)
	}
	specs := make([]tokens.ClientSpec, 0, len(f.Clients))
	for i, e := range f.Clients {
		secret := e.Secret
		if e.SecretEnv != "" {
			if secret != "" {
				return nil, fmt.Errorf("%s: client %d (%s): give secret or secret_env, not both", path, i, e.ID)
			}
			if secret = getenv(e.SecretEnv); secret == "" {
				return nil, fmt.Errorf("%s: client %d (%s): secret_env %s is not set", path, i, e.ID, e.SecretEnv)
			}
		}
		specs = append(specs, tokens.ClientSpec{ID: e.ID, Name: e.Name, Type: tokens.ClientType(e.Type),
			GrantTypes: e.GrantTypes, AllowedOrigins: e.AllowedOrigins, Audience: e.Audience, Roles: e.Roles,
			Disabled: e.Disabled, Secret: secret})
	}
	return specs, nil
}

const clientsUsage = `usage:
  server clients list
  server clients create ID --type public|confidential [--name N] [--grants a,b] [--origins a,b] [--audience A] [--roles a,b]
  server clients update ID [--name N] [--grants a,b] [--origins a,b] [--audience A] [--roles a,b] [--disable|--enable]
  server clients rotate-secret ID
  server clients delete ID
  server clients apply FILE
Secrets are printed once, by create and rotate-secret. DATABASE_URL, TOKEN_SECRET and the
deployment's JWT_KEYS (or JWT_SECRET for HS256) are required`

// clientsCommand runs `server clients …` against DATABASE_URL.
func clientsCommand(ctx context.Context, getenv func(string) string, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(clientsUsage)
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("bad configuration:\n%w", err)
	}
	if cfg.DatabaseURL == "" {
		return errors.New("DATABASE_URL: required for clients")
	}
	st, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx, "up", nil); err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	keys, err := cfg.keySet(func(string) {})
	if err != nil {
		return err
	}
	svc, err := tokens.NewService(st, password.Argon2id{Params: password.OWASP}, cfg.serviceConfig(keys, cfg.TokenSecret))
	if err != nil {
		return err
	}
	cmd, rest := args[0], args[1:]
	var id string
	if cmd != "list" && cmd != "apply" {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			return errors.New(clientsUsage)
		}
		id, rest = rest[0], rest[1:]
	}
	switch cmd {
	case "list":
		list, err := svc.Clients(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT_ID\tTYPE\tGRANTS\tAUDIENCE\tROLES\tORIGINS\tDISABLED")
		for _, c := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", c.ID, c.Type, strings.Join(c.GrantTypes, ","), c.Audience,
				strings.Join(c.Roles, ","), strings.Join(c.AllowedOrigins, ","), c.Disabled)
		}
		return tw.Flush()
	case "create", "update":
		spec, err := clientFlags(cmd, id, rest)
		if err != nil {
			return err
		}
		if cmd == "update" {
			_, err = svc.UpdateClient(ctx, spec, "cli", tokens.ClientInfo{})
			if err == nil {
				fmt.Fprintf(stdout, "updated client %s\n", id)
			}
			return err
		}
		c, secret, err := svc.CreateClient(ctx, spec, "cli", tokens.ClientInfo{})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created %s client %s\n", c.Type, c.ID)
		if secret != "" {
			fmt.Fprintf(stdout, "client_secret: %s\n(shown once: store it now)\n", secret)
		}
		return nil
	case "rotate-secret":
		secret, err := svc.RotateClientSecret(ctx, id, "cli", tokens.ClientInfo{})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client_secret: %s\n(shown once: store it now; the old secret no longer works)\n", secret)
		return nil
	case "delete":
		if err := svc.DeleteClient(ctx, id, "cli", tokens.ClientInfo{}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted client %s (its sessions and tokens are revoked)\n", id)
		return nil
	case "apply":
		if len(rest) != 1 {
			return errors.New(clientsUsage)
		}
		specs, err := readClientsFile(rest[0], getenv)
		if err != nil {
			return err
		}
		created, updated, err := svc.ApplyClients(ctx, specs)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "clients: %d created, %d updated\n", created, updated)
		return nil
	}
	return fmt.Errorf("unknown clients command %q\n%s", cmd, clientsUsage)
}

// clientFlags parses the flags of create and update.
func clientFlags(cmd, id string, args []string) (tokens.ClientSpec, error) {
	fs := flag.NewFlagSet("clients "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	typ := fs.String("type", "", "public or confidential")
	name := fs.String("name", "", "display name")
	grants := fs.String("grants", "", "comma-separated grant types")
	origins := fs.String("origins", "", "comma-separated allowed browser origins")
	audience := fs.String("audience", "", "aud of the client's access tokens")
	roles := fs.String("roles", "", "comma-separated roles of client_credentials tokens")
	disable := fs.Bool("disable", false, "disable the client")
	enable := fs.Bool("enable", false, "enable the client")
	if err := fs.Parse(args); err != nil {
		return tokens.ClientSpec{}, fmt.Errorf("%v\n%s", err, clientsUsage)
	}
	if fs.NArg() != 0 {
		return tokens.ClientSpec{}, errors.New(clientsUsage)
	}
	spec := tokens.ClientSpec{ID: id, Type: tokens.ClientType(*typ)}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	list := func(v string) *[]string {
		l := splitList(v)
		if l == nil {
			l = []string{}
		}
		return &l
	}
	if set["name"] {
		spec.Name = name
	}
	if set["grants"] {
		spec.GrantTypes = list(*grants)
	}
	if set["origins"] {
		spec.AllowedOrigins = list(*origins)
	}
	if set["audience"] {
		spec.Audience = audience
	}
	if set["roles"] {
		spec.Roles = list(*roles)
	}
	if *disable && *enable {
		return tokens.ClientSpec{}, errors.New("--disable and --enable together")
	}
	if *disable || *enable {
		d := *disable
		spec.Disabled = &d
	}
	if cmd == "create" && spec.Type == "" {
		return tokens.ClientSpec{}, errors.New("--type public|confidential is required")
	}
	return spec, nil
}

// setUpClients stores the default client (its origins and audience follow
// CORS_ALLOWED_ORIGINS and JWT_AUDIENCE), applies CLIENTS_FILE, and loads
// the client directory.
func setUpClients(ctx context.Context, svc *tokens.Service, cfg Config, getenv func(string) string, log *slog.Logger) error {
	if err := svc.EnsureDefaultClient(ctx); err != nil {
		return fmt.Errorf("the default client (DEFAULT_CLIENT_ID, with CORS_ALLOWED_ORIGINS and JWT_AUDIENCE): %w", err)
	}
	if cfg.ClientsFile != "" {
		specs, err := readClientsFile(cfg.ClientsFile, getenv)
		if err != nil {
			return fmt.Errorf("CLIENTS_FILE: %w", err)
		}
		created, updated, err := svc.ApplyClients(ctx, specs)
		if err != nil {
			return fmt.Errorf("CLIENTS_FILE: %w", err)
		}
		log.Info("clients file applied", "created", created, "updated", updated)
	}
	return svc.RefreshClients(ctx)
}
