// Command sbc-sip-sidecar is the SIP registrar sidecar of a jambonz SBC.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/app"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/cli"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/config"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/logging"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println(config.Version)
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "cli" {
		os.Exit(cli.Main(context.Background(), os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := logging.New(os.Stderr, cfg.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := app.Run(ctx, cfg, log); err != nil {
		log.Error("exiting", "err", err)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	log.Info("stopped")
}
