//! Maintenance and service due.

use crate::support::*;

async fn service_due_pages_most_used_first(db: TestDb) {
    let env = env(db).await;
    let mut manager = env.client(&env.a.manager).await;
    let mut staff = env.client(&env.a.staff).await;
    let mut expected = Vec::new();
    for (i, hours) in [3i64, 5, 4, 5, 3, 1].into_iter().enumerate() {
        let g = register(
            &mut manager,
            gun(
                &env.a.location,
                &format!("DUE-{i}"),
                &[pb::Attachment::Ball],
            ),
        )
        .await;
        sqlx::query("UPDATE devices SET usage_since_service = $1 WHERE id = $2")
            .bind(hours * 3600)
            .bind(&g.id)
            .execute(env.db.db.reader())
            .await
            .unwrap();
        if hours >= 2 {
            expected.push((-hours, g.id));
        }
    }
    expected.sort();
    let expected: Vec<_> = expected.into_iter().map(|(_, id)| id).collect();
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = staff
            .list_due_for_service(pb::ListDueForServiceRequest {
                min_usage_hours: 2,
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages.push(page.devices.len());
        seen.extend(page.devices.into_iter().map(|d| d.id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, expected, "most used first, ties by id, each once");
    assert_eq!(
        pages,
        [2, 2, 1],
        "full pages, the last one short, none empty"
    );
}

recovery_kit::engine_tests!(service_due_pages_most_used_first);
