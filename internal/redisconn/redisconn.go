// Package redisconn opens the Redis client described by the configuration
// (plain, Sentinel, TLS), shared by every Redis-backed component.
package redisconn

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
)

// Open returns a client for c. It does not connect yet.
func Open(c config.Redis) (redis.UniversalClient, error) {
	var tlsConf *tls.Config
	if c.TLS {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		if c.TLSCAFile != "" {
			pem, err := os.ReadFile(c.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("redis: reading JAMBONES_REDIS_TLS_CA_FILE: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("redis: JAMBONES_REDIS_TLS_CA_FILE %s holds no PEM certificate", c.TLSCAFile)
			}
			tlsConf.RootCAs = pool
		}
		if c.TLSCertFile != "" || c.TLSKeyFile != "" {
			cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
			if err != nil {
				return nil, fmt.Errorf("redis: loading client certificate: %w", err)
			}
			tlsConf.Certificates = []tls.Certificate{cert}
		}
	}
	// Short timeouts: a REGISTER must be answered (503) quickly when Redis
	// is gone, not hang behind the phone's retransmissions.
	const (
		dial = 2 * time.Second
		rw   = 1 * time.Second
	)
	if len(c.Sentinels) > 0 {
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       c.SentinelMasterName,
			SentinelAddrs:    c.Sentinels,
			SentinelUsername: c.SentinelUsername,
			SentinelPassword: c.SentinelPassword,
			Username:         c.Username,
			Password:         c.Password,
			TLSConfig:        tlsConf,
			DialTimeout:      dial,
			ReadTimeout:      rw,
			WriteTimeout:     rw,
		}), nil
	}
	return redis.NewClient(&redis.Options{
		Addr:         c.Host + ":" + strconv.Itoa(c.Port),
		Username:     c.Username,
		Password:     c.Password,
		TLSConfig:    tlsConf,
		DialTimeout:  dial,
		ReadTimeout:  rw,
		WriteTimeout: rw,
	}), nil
}
