// Package mysqldb opens MySQL/MariaDB connections, runs transactional units of work with a
// bounded retry, and translates driver errors into a small set of errors the rest of the
// service understands.
package mysqldb

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ParseURL turns DATABASE_URL (mysql://user:pass@host:port/db?param=value) into a driver config.
// The SQLAlchemy form mysql+pymysql:// of the product description is accepted too. Query
// parameters are passed to the server as session variables, except the driver's own options
// (tls, charset, collation).
func ParseURL(raw string) (*mysql.Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse errors quote the input, which holds the password: do not wrap them.
		return nil, fmt.Errorf("not a URL of the form mysql://user:password@host:3306/dbname")
	}
	switch u.Scheme {
	case "mysql", "mysql+pymysql", "mariadb":
	default:
		return nil, fmt.Errorf("scheme %q is not supported: use mysql://user:password@host:3306/dbname", u.Scheme)
	}
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "3306"
	}
	cfg.Addr = net.JoinHostPort(host, port)
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	if strings.Contains(cfg.DBName, "/") {
		return nil, fmt.Errorf("database name must not contain '/'")
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.Collation = "utf8mb4_unicode_ci"
	cfg.InterpolateParams = true
	// MultiStatements stays off: one statement per query, so that no injection could ever stack
	// a second statement, and proxies such as ProxySQL pass every query.
	cfg.Timeout = 5 * time.Second
	cfg.ReadTimeout = 30 * time.Second
	cfg.WriteTimeout = 30 * time.Second
	cfg.Params = map[string]string{
		// Strict mode on every server, whatever its defaults: too-long values and bad dates are
		// errors, never silent truncation.
		"sql_mode":  "'STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
		"time_zone": "'+00:00'",
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "tls":
			cfg.TLSConfig = v
		case "collation":
			cfg.Collation = v
		default:
			cfg.Params[k] = v
		}
	}
	return cfg, nil
}

// Redacted returns the URL with its password replaced, for log lines and error messages.
func Redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable DATABASE_URL>"
	}
	return u.Redacted()
}
