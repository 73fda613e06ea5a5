//! `skiff kubeconfig`: a kubeconfig for the `skiff serve` of a data dir — its TLS address,
//! the CA it generated, its bearer token — usable as is by kubectl (`kubectl --kubeconfig
//! <(skiff kubeconfig) get pods`), client-go and kube-rs.
//!
//! Exit 1 (not 2) when there is nothing to print: the command line was fine, the data dir's
//! state is not (no daemon ever ran there, or it serves the unix socket only).

use skiff_api::transport::{self, Endpoint};

use crate::exit;
use crate::store::DataDirArg;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    data: DataDirArg,
}

pub fn run(args: &Args) -> u8 {
    match kubeconfig(args) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::FAILURE
        }
    }
}

fn kubeconfig(args: &Args) -> anyhow::Result<String> {
    let data_dir = args.data.resolve()?;
    let shown = data_dir.display();
    let Some(endpoint) = Endpoint::read(&data_dir)? else {
        anyhow::bail!(
            "no skiff serve has run on {shown}: start one with `skiff serve --data-dir {shown} --listen 127.0.0.1:6443`"
        );
    };
    let Some(server) = endpoint.server.as_deref() else {
        anyhow::bail!(
            "the skiff serve of {shown} listens on its unix socket only ({}), which kubectl cannot use: start it with --listen ADDR (e.g. 127.0.0.1:6443)",
            endpoint.socket.display()
        );
    };
    let Some((ca, token)) = transport::read_client_credentials(&data_dir)? else {
        anyhow::bail!("the credentials of the skiff serve of {shown} are missing (its serve/ca.crt or serve/token); restart it to have them made");
    };
    if !matches!(super::client::DaemonClient::connect(&data_dir), Ok(Some(_))) {
        eprintln!("warning: no skiff serve runs on {shown} now; this is where it last listened");
    }
    Ok(transport::kubeconfig(server, &ca, &token))
}
