//! `ListProtocolTemplates`: a tenant's templates, in pages, to its studio
//! only.

use recovery_kit::testing::TestDb;
use recovery_proto::protocols::v1 as pb;
use tonic::Code;

use crate::support::{Client, cryo_after_activity, env, fields, template};

fn plan(name: &str) -> pb::ProtocolTemplate {
    pb::ProtocolTemplate {
        description: format!("{name}, step by step"),
        ..cryo_after_activity(name)
    }
}

/// Every template `c` lists, page by page of `size`; the pages' lengths.
async fn all_pages(c: &mut Client, size: i32) -> (Vec<pb::ProtocolTemplate>, Vec<usize>) {
    let (mut all, mut pages, mut token) = (Vec::new(), Vec::new(), String::new());
    loop {
        let page = c
            .list_protocol_templates(pb::ListProtocolTemplatesRequest {
                page_size: size,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        pages.push(page.templates.len());
        all.extend(page.templates);
        if page.next_page_token.is_empty() {
            return (all, pages);
        }
        token = page.next_page_token;
        assert!(pages.len() < 10, "paging never ends");
    }
}

async fn templates_are_listed_in_pages_to_their_own_tenant(db: TestDb) {
    let env = env(db).await;
    let mut north = env.studio("North").await;
    let mut south = env.studio("South").await;
    let mut made = Vec::new();
    for name in ["Race week", "Long run", "Off season"] {
        made.push(template(&mut north.manager, plan(name)).await);
    }
    let theirs = template(&mut south.manager, plan("South's own")).await;

    // The front desk reads them too, all three over pages of two.
    let (listed, pages) = all_pages(&mut north.front_desk, 2).await;
    assert_eq!(pages, [2, 1]);
    let mut ids: Vec<_> = listed.iter().map(|t| t.id.clone()).collect();
    ids.sort();
    let mut expected: Vec<_> = made.iter().map(|t| t.id.clone()).collect();
    expected.sort();
    assert_eq!(ids, expected, "each template once, none of South's");
    for t in &made {
        assert_eq!(listed.iter().find(|l| l.id == t.id), Some(t), "as created");
    }
    // South lists only its own.
    let (listed, _) = all_pages(&mut south.manager, 0).await;
    assert_eq!(listed, [theirs]);
    // A page size over the limit is capped, a negative one refused.
    let (listed, pages) = all_pages(&mut north.manager, 10_000).await;
    assert_eq!((listed.len(), pages), (3, vec![3]));
    let bad = north
        .manager
        .list_protocol_templates(pb::ListProtocolTemplatesRequest {
            page_size: -1,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert_eq!(fields(&bad), ["page_size"]);
}

recovery_kit::engine_tests!(templates_are_listed_in_pages_to_their_own_tenant);
